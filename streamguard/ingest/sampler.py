"""Choose the frames worth hashing and hand them on as luma planes.

``keyframes`` sets the decoder to skip non-key frames and never feeds it a
non-key packet, so only keyframes are ever decoded. ``interval:S`` decodes
everything (needed when content can appear between keyframes) and keeps at
most one frame per S seconds of stream time.
"""

import errno
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np
from av.container import InputContainer
from av.stream import Discard
from av.video.stream import VideoStream

from streamguard.errors import SourceEnded, SourceError, SourceRefused
from streamguard.hashing import MAX_SIDE
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.orientation import displayed
from streamguard.ingest.replay import paced
from streamguard.ingest.source import ffmpeg_reason
from streamguard.observability import metrics

# 8-bit formats whose first plane is the luma; others go through swscale.
_LUMA_PLANE_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True, slots=True)
class Sampling:
    """``keyframes`` (interval_s None) or ``interval:S``."""

    interval_s: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Sampling":
        if text == "keyframes":
            return cls()
        name, _, value = text.partition(":")
        try:
            interval_s = float(value)
        except ValueError:
            interval_s = -1.0
        if name != "interval" or not 0 < interval_s < math.inf:  # inf: only the first frame
            raise ValueError(f"sampling {text!r}: expected 'keyframes' or 'interval:SECONDS' (> 0)")
        return cls(interval_s)

    def __str__(self) -> str:
        return "keyframes" if self.interval_s is None else f"interval:{self.interval_s:g}"


@dataclass(frozen=True, slots=True)
class Frame:
    """A sampled frame: stream time, wall-clock arrival, and its luma."""

    stream_id: str
    pts_s: float
    received_at: float
    luma: Luma
    width: int
    height: int


@dataclass(slots=True)
class SampleStats:
    packets: int = 0
    frames_decoded: int = 0
    frames_sampled: int = 0
    decode_errors: int = 0
    last_error: str = field(default="")
    end_s: float | None = None  # stream time reached by the last packet read
    lag_s: float = 0.0  # how far reading is behind the stream's own clock
    live_edge_skips: int = 0  # times decoding jumped ahead to the newest keyframe


class _LiveEdge:
    """Keeps reading near the live edge: past ``max_lag_s`` behind, stop decoding
    until reading has caught up, then resume at the newest keyframe.

    Lag is arrival time minus stream time, relative to the earliest arrival seen,
    so a burst at start (a server sending its buffered GOP) does not count as lag.

    Stream time comes from the publisher, so it may lie, and a lag that only lies
    must not stop decoding for good. Stream time running backwards (a timestamp
    reset, an HLS discontinuity) adds no lag: only the wall clock running on does,
    as if stream time had stood still. And reading without decoding catches up much
    faster than in ``max_lag_s`` of wall time: a lag still there after a skip that
    long comes from a stream clock that runs slow or stands still, and skipping
    stops for the rest of the connection.
    """

    def __init__(self, max_lag_s: float | None) -> None:
        self.max_lag_s = max_lag_s
        self.origin: float | None = None
        self.previous_s: float | None = None
        self.skipping = False
        self.skipping_since = 0.0

    def lag(self, received_at: float, media_s: float) -> float:
        offset = received_at - media_s
        if self.origin is None or offset < self.origin:
            self.origin = offset
        elif self.previous_s is not None and media_s < self.previous_s:
            self.origin += self.previous_s - media_s
        self.previous_s = media_s
        return offset - self.origin

    def skip(self, stats: SampleStats, is_keyframe: bool, received_at: float) -> bool:
        """Whether to leave this packet undecoded."""
        if self.max_lag_s is not None and stats.lag_s > self.max_lag_s:
            if not self.skipping:
                self.skipping, self.skipping_since = True, received_at
                stats.live_edge_skips += 1
                metrics.LIVE_EDGE_SKIPS.inc()
                return True
            if received_at - self.skipping_since <= self.max_lag_s:
                return True
            self.max_lag_s = self.origin = None  # the clock lies: decode from the next keyframe on
        if self.skipping and not is_keyframe:
            return True
        self.skipping = False
        return False


def frame_luma(frame: av.VideoFrame) -> Luma:
    """8-bit luma: the decoder's Y plane itself (no copy) when it has one."""
    if frame.format.name not in _LUMA_PLANE_FORMATS:
        return Luma(frame.to_ndarray(format="gray"), video=True)
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    full_range = frame.format.name.startswith("yuvj") or frame.color_range == _FULL_RANGE
    return Luma(rows[:, : plane.width], studio_range=not full_range, video=True)


def sample_frames(
    container: InputContainer,
    stream: VideoStream,
    stream_id: str,
    sampling: Sampling,
    *,
    stats: SampleStats | None = None,
    realtime: bool = False,
    max_lag_s: float | None = None,
    demuxer_skips_nonkey: bool = False,
    read_timeout_s: float | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[Frame]:
    """Yield the sampled frames of ``stream``; undecodable packets are counted and skipped.

    ``stream_id`` names the stream in frames and errors, so it must not hold secrets.
    ``realtime`` paces a file like a live stream; ``max_lag_s`` enables live-edge skipping.
    ``demuxer_skips_nonkey`` (keyframe mode) lets FFmpeg drop non-key packets before they
    reach Python: ~10x fewer packets from nginx-rtmp and ~2 ms less CPU per stream-second,
    but ``stats.end_s`` then stops at the last keyframe. ``read_timeout_s`` is the
    ``rw_timeout`` the source was opened with, to tell a stall from an end.
    """
    stats = stats if stats is not None else SampleStats()
    codec = stream.codec_context
    codec.thread_type = "SLICE"  # frame threads would hold keyframes back by a GOP each
    codec.thread_count = 1  # parallelism comes from running many streams at once
    keyframes_only = sampling.interval_s is None
    if keyframes_only:
        codec.skip_frame = "NONKEY"
        # Keyframes are decoded one by one and only hashed, never shown or used as
        # references, so deblocking buys nothing: skipping it saves ~15% of the
        # decode and moves PDQ by at most 2 bits (docs/hashing.md).
        codec.options = {**codec.options, "skip_loop_filter": "all"}
        if demuxer_skips_nonkey:
            stream.discard = Discard.nonkey
    # Integer maths, one rounding: Fractions per packet cost 10% of a scan's CPU.
    tb_num, tb_den = stream.time_base.numerator, stream.time_base.denominator
    packets = _demux(container, stream, stream_id, stats, read_timeout_s)
    last_kept: float | None = None
    edge = _LiveEdge(max_lag_s)
    for packet in paced(packets) if realtime else packets:
        received_at = clock()
        media_s = None
        if packet.size:
            stats.packets += 1
            if packet.pts is not None:
                media_s = packet.pts * tb_num / tb_den
                stats.end_s = media_s + (packet.duration or 0) * tb_num / tb_den
                stats.lag_s = edge.lag(received_at, media_s)
            if edge.skip(stats, packet.is_keyframe, received_at):
                continue
            if keyframes_only and not packet.is_keyframe:
                continue
        try:
            frames = _decode(stream, packet if packet.size else None, drain=keyframes_only)
        except av.FFmpegError as exc:
            _check_size(codec, stream_id, media_s)
            stats.decode_errors += 1
            stats.last_error = ffmpeg_reason(exc)
            metrics.DECODE_ERRORS.inc()
            continue
        if not frames:
            _check_size(codec, stream_id, media_s)
        metrics.FRAMES_DECODED.inc(len(frames))
        for frame in frames:
            stats.frames_decoded += 1
            if frame.pts is None:
                continue
            pts_s = frame.pts * tb_num / tb_den
            if (
                sampling.interval_s
                and last_kept is not None
                and pts_s < last_kept + sampling.interval_s
            ):
                continue
            if max(frame.width, frame.height) > MAX_SIDE:
                raise _too_large(stream_id, pts_s, frame.width, frame.height)
            last_kept = pts_s
            stats.frames_sampled += 1
            luma = displayed(frame_luma(frame), frame)  # hashed as shown: ingest/orientation.py
            yield Frame(stream_id, pts_s, received_at, luma, luma.shape[1], luma.shape[0])


def _too_large(stream_id: str, pts_s: float | None, width: int, height: int) -> SourceRefused:
    at = "" if pts_s is None else f" at {pts_s:.3f} s"
    return SourceRefused(
        f"{stream_id}: frame{at} is {width}x{height}, larger than {MAX_SIDE} px on a side"
    )


def _check_size(codec: av.VideoCodecContext, stream_id: str, pts_s: float | None) -> None:
    """Refuse a picture size the decoder took from the stream but gave no frame of.

    Decoders refuse pictures above ``max_pixels`` (source.video_stream) without an
    error in keyframe mode, so a stream changing to a huge size would otherwise just
    go quiet.
    """
    if max(codec.width, codec.height) > MAX_SIDE:
        raise _too_large(stream_id, pts_s, codec.width, codec.height)


def _demux(
    container: InputContainer,
    stream: VideoStream,
    stream_id: str,
    stats: SampleStats,
    read_timeout_s: float | None,
) -> Iterator[av.Packet]:
    """The stream's packets; a failed read (truncated file, lost connection) is a SourceError.

    FFmpeg's RTMP client reports every failed read as EIO, whether the server
    closed the stream (nginx-rtmp does when the publisher leaves) or nothing
    arrived for ``rw_timeout``. A read that failed before the timeout could have
    run out is the server closing: SourceEnded. One that waited it out is a stall,
    or, when the demuxer drops non-key packets, possibly a close that came more than
    the timeout after the last keyframe: the worker tells them apart on reconnect.

    Empty packets are dropped: a decoder takes one as "end of stream, flush" and
    decodes nothing after it, and some containers (NUT) store them mid-stream.
    One empty packet is yielded after the last one, for the decoder's final frames.
    """
    packets = container.demux(stream)
    while True:
        started = time.monotonic()
        try:
            packet = next(packets)
        except (StopIteration, IndexError):
            # IndexError: PyAV's demux, flushing after the last packet, looks up streams
            # the demuxer added mid-stream (a damaged FLV or MPEG-TS grows new ones) and
            # PyAV never registered (PyAV-Org/PyAV#692). Every packet was read by then.
            break
        except av.FFmpegError as exc:
            waited_s = time.monotonic() - started
            stalled = read_timeout_s is not None and waited_s >= 0.95 * read_timeout_s
            if exc.errno == errno.EIO and stats.packets and not stalled:
                raise SourceEnded(
                    f"{stream_id}: closed by the server after {stats.packets} packets"
                ) from None
            reason = f"nothing received for {waited_s:.1f} s" if stalled else ffmpeg_reason(exc)
            raise SourceError(
                f"{stream_id}: read failed after {stats.packets} packets ({reason})",
                "stalled" if stalled else "read_failed",
            ) from None
        if packet.size:
            yield packet
    yield av.Packet()


def _decode(stream: VideoStream, packet: av.Packet | None, *, drain: bool) -> list[av.VideoFrame]:
    """Decode one packet (None flushes).

    With ``drain`` the decoder is emptied after the packet, so a keyframe comes out
    at once instead of waiting behind B-frame reordering for the next keyframes
    (seconds, in a live stream); each keyframe decodes on its own anyway.
    """
    frames = stream.decode(packet)
    if drain and packet is not None:
        frames += stream.decode(None)
        stream.codec_context.flush_buffers()
    return frames
