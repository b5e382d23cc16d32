"""Streams a publisher who has read streamguard's code would send (docs/sampling.md).

Each case is a clip, encoded as a live encoder would (libx264, B-frames, CBR), whose
encoder settings a publisher controls: which frames are keyframes, the keyframe
interval, the picture size; and, for stall-and-burst, a pattern of sending. Any
flagged picture and any benign one can be used: the cases are generic, the bundled
stand-ins are only the default.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from streamguard.ingest.source import VideoPacket

FPS = 30
TIME_BASE = Fraction(1, FPS)  # the encoders'; the FLV stream's becomes 1/1000 once opened
SIZE = (1280, 720)


@dataclass(frozen=True, slots=True)
class Segment:
    """Frames of one picture size: for each frame, which picture and whether it is a keyframe."""

    seconds: float
    flagged: Callable[[int], bool]  # frame number (from the segment's start) -> flagged?
    keyframe: Callable[[int], bool]
    size: tuple[int, int] = SIZE
    fade_frames: int = 0  # the flagged picture fades in over this many frames

    def weight(self, n: int) -> float:
        """How much of frame ``n`` is the flagged picture (0 to 1)."""
        if not self.flagged(n):
            return 0.0
        shown = next((k for k in range(self.fade_frames) if not self.flagged(n - k - 1)), None)
        return 1.0 if shown is None else (shown + 1) / (self.fade_frames + 1)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    what: str
    segments: tuple[Segment, ...]
    flagged_from_s: float  # stream time the flagged picture first shows
    stall_s: float = 0.0  # stall-and-burst: pause this long before each flagged keyframe
    period_s: float = 0.0  # stall-and-burst: stream time from one flagged GOP to the next
    expect: str = "kill"  # or "review" (unwatchable), "nothing" (benign streams)

    @property
    def seconds(self) -> float:
        return sum(segment.seconds for segment in self.segments)

    def stall(self) -> Callable[[VideoPacket], float]:
        """For replay.publish: pause ``stall_s`` before each flagged keyframe."""
        first = self.segments[0]
        origin: list[float] = []

        def pause_s(packet: VideoPacket) -> float:
            if not self.stall_s or not packet.is_keyframe or packet.pts is None:
                return 0.0
            pts_s = float(packet.pts * packet.time_base)
            origin[:] = origin or [pts_s]
            return self.stall_s if first.flagged(round((pts_s - origin[0]) * FPS)) else 0.0

        return pause_s


def every(frames: int) -> Callable[[int], bool]:
    return lambda n: n % frames == 0


def dodge(
    share: float,
    seconds: float = 40.0,
    gop_s: float = 2.0,
    size: tuple[int, int] = SIZE,
    fade_s: float = 0.0,
) -> Case:
    """Keyframe dodging: a benign picture on every keyframe, the flagged one on the last
    ``share`` of each GOP (away from the keyframes); with ``fade_s``, fading in over that
    long (no scene cut for guard to see: only its random probes find it)."""
    gop = round(gop_s * FPS)
    first = gop - round(share * gop)
    fade = round(fade_s * FPS)
    return Case(
        f"dodge-{round(share * 100)}" + (f"-fade{fade_s:g}s" if fade else ""),
        f"{gop_s:g} s GOP, flagged on {share:.0%} of each GOP, never on a keyframe"
        + (f", fading in over {fade_s:g} s" if fade else ""),
        (Segment(seconds, lambda n: n % gop >= max(first, 1), every(gop), size, fade),),
        flagged_from_s=max(first, 1) / FPS,
    )


def long_gop(
    gop_s: float = 10.0, show_s: float = 5.0, seconds: float = 30.0, size: tuple[int, int] = SIZE
) -> Case:
    """Keyframes ``gop_s`` apart; the flagged picture between two of them for ``show_s``."""
    gop = round(gop_s * FPS)
    start = gop + round((gop_s - show_s) / 2 * FPS)  # in the second GOP, centred
    end = start + round(show_s * FPS)
    return Case(
        f"long-gop-{gop_s:g}s",
        f"keyframes {gop_s:g} s apart, flagged for {show_s:g} s between two of them",
        (Segment(seconds, lambda n: start <= n < end, every(gop), size),),
        flagged_from_s=start / FPS,
    )


def stall_and_burst(
    flagged_gops: int = 6,
    stall_s: float = 4.6,
    gop_s: float = 2.0,
    benign_gops: int = 5,
    size: tuple[int, int] = SIZE,
) -> Case:
    """The publisher pauses just over max_lag_s before each flagged keyframe, then sends
    its backlog at once; each flagged GOP comes after ``benign_gops`` benign ones."""
    gop = round(gop_s * FPS)
    period = (1 + benign_gops) * gop
    return Case(
        "stall-burst",
        f"pauses {stall_s:g} s before each of {flagged_gops} flagged GOPs, then bursts",
        (
            Segment(
                flagged_gops * period / FPS, lambda n: n % period >= period - gop, every(gop), size
            ),
        ),
        flagged_from_s=(period - gop) / FPS,
        stall_s=stall_s,
        period_s=period / FPS,
    )


OVERSIZE = (8208, 16)  # over the 8192 px limit on a side, small in pixels


def oversized(seconds: float = 18.0, oversize_s: float = 1.0, size: tuple[int, int] = SIZE) -> Case:
    """Frames too large to look at for ``oversize_s``, then the flagged picture."""
    return Case(
        "oversize",
        f"{oversize_s:g} s at 8208x16 (over the size limit), then the flagged picture",
        (
            Segment(oversize_s, lambda n: False, every(FPS), OVERSIZE),
            Segment(seconds, lambda n: True, every(2 * FPS), size),
        ),
        flagged_from_s=oversize_s,
    )


def unwatchable(seconds: float = 15.0) -> Case:
    """Nothing but frames too large to look at: reported as such, never ignored."""
    return Case(
        "unwatchable",
        "only frames at 8208x16 (over the size limit)",
        (Segment(seconds, lambda n: False, every(2 * FPS), OVERSIZE),),
        flagged_from_s=0.0,
        expect="review",
    )


def cases() -> list[Case]:
    """The adversarial suite of ``streamguard eval``."""
    return [
        dodge(0.97),
        dodge(0.5),
        dodge(0.25),
        dodge(0.97, fade_s=0.5),
        long_gop(),
        stall_and_burst(),
        oversized(),
        unwatchable(),
    ]


def fitted(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``picture`` (RGB) scaled to ``size`` (width, height) as I420 planes."""
    width, height = size
    rgb = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)


def write_clip(
    path: Path,
    case: Case,
    flagged: np.ndarray,
    benign: np.ndarray,
    *,
    bitrate: int = 2_500_000,
    bframes: int = 2,
) -> Path:
    """Encode ``case`` with libx264 as OBS would (CBR, B-frames), keyframes exactly where the
    case puts them (forced IDR, no scene-cut keyframes), SPS/PPS with every keyframe so
    that a change of picture size can follow in the same stream."""
    with av.open(str(path), "w", format="flv") as container:
        stream = container.add_stream(
            "libx264",
            rate=FPS,
            options={
                "preset": "veryfast",
                "x264-params": (
                    f"keyint=100000:min-keyint=1:scenecut=0:forced-idr=1:bframes={bframes}:"
                    f"repeat-headers=1:vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}"
                ),
                "threads": "1",
            },
        )
        stream.width, stream.height = case.segments[0].size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        stream.time_base = TIME_BASE
        offset = 0
        for segment in case.segments:
            _encode_segment(container, stream, segment, offset, (flagged, benign))
            offset += round(segment.seconds * FPS)
    return path


def _encode_segment(
    container: av.container.OutputContainer,
    stream: av.VideoStream,
    segment: Segment,
    offset: int,
    pictures: Sequence[np.ndarray],
) -> None:
    flagged, benign = (fitted(picture, segment.size) for picture in pictures)
    if segment.size != (stream.width, stream.height):
        # A new picture size: a new encoder, in the same stream (x264 repeats SPS/PPS).
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height = segment.size
        context.pix_fmt, context.time_base = "yuv420p", TIME_BASE
        context.framerate, context.bit_rate = Fraction(FPS), stream.bit_rate
        context.options = dict(stream.codec_context.options)
        encoder = context
    else:
        encoder = stream.codec_context
    for n in range(round(segment.seconds * FPS)):
        weight = segment.weight(n)
        if weight in (0.0, 1.0):
            planes = flagged if weight else benign
        else:
            planes = cv2.addWeighted(flagged, weight, benign, 1.0 - weight, 0.0)
        frame = av.VideoFrame.from_ndarray(planes, "yuv420p")
        frame.pts, frame.time_base = offset + n, TIME_BASE
        frame.pict_type = PictureType.I if segment.keyframe(n) else PictureType.NONE
        for packet in encoder.encode(frame):
            packet.stream = stream
            container.mux(packet)
    for packet in encoder.encode(None):
        packet.stream = stream
        container.mux(packet)
