"""Turn a video stream into the frames worth hashing, as luma planes.

Which frames: the picker of the stream's sampling mode (pickers.py, docs/sampling.md).
Live streams are read ahead in a thread of their own (feed.py), so that streamguard's
own lag is told apart from the publisher's and a burst is never skipped.
"""

import errno
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np
from av.container import InputContainer
from av.stream import Discard
from av.video.stream import VideoStream

from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.errors import SourceEnded, SourceError, SourceUnwatchable
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.budget import CpuBudget
from streamguard.ingest.decoders import ChainSkip, StreamDecoders
from streamguard.ingest.feed import PacketFeed
from streamguard.ingest.orientation import displayed
from streamguard.ingest.pickers import picker
from streamguard.ingest.picking import PacketTimes, Pick, Picker, SampleReason
from streamguard.ingest.source import VideoPacket, ffmpeg_reason
from streamguard.ingest.stats import SampleStats
from streamguard.observability import metrics

_LUMA_PLANE_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG
DEFAULT_GUARD = GuardSettings()
Pace = Callable[[Iterator[VideoPacket]], Iterator[VideoPacket]]


@dataclass(frozen=True, slots=True)
class Frame:
    """A sampled frame: stream time, wall-clock arrival, and its luma."""

    stream_id: str
    pts_s: float
    received_at: float
    luma: Luma
    width: int
    height: int
    reason: SampleReason = "keyframe"  # why it was sampled
    broadcast_ms: int = 0  # its broadcast's timeline start (runtime/broadcast.py)


class PublisherLag:
    """How far arrival is behind the stream's own clock, relative to the earliest arrival
    seen, so that a burst at start (a server sending its buffered GOP) is no lag.

    Stream time comes from the publisher and may lie: stream time running backwards (a
    timestamp reset, an HLS discontinuity) adds no lag, only the wall clock running on.
    This is the publisher's pacing, shown in /streams; it is never a reason to skip.
    """

    def __init__(self) -> None:
        self.origin: float | None = None
        self.previous_s: float | None = None

    def __call__(self, received_at: float, media_s: float) -> float:
        offset = received_at - media_s
        if self.origin is None or offset < self.origin:
            self.origin = offset
        elif self.previous_s is not None and media_s < self.previous_s:
            self.origin += self.previous_s - media_s
        self.previous_s = media_s
        return offset - self.origin


def frame_luma(frame: av.VideoFrame) -> Luma:
    """8-bit luma: the decoder's Y plane itself (no copy) when it has one."""
    if frame.format.name not in _LUMA_PLANE_FORMATS:
        return Luma(frame.to_ndarray(format="gray"), video=True)
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    full_range = frame.format.name.startswith("yuvj") or frame.color_range == _FULL_RANGE
    return Luma(rows[:, : plane.width], studio_range=not full_range, video=True)


def unpredictable() -> random.Random:
    """Random numbers a publisher cannot predict from the code: seeded by the OS."""
    return random.Random(os.urandom(16))


def sample_frames(
    container: InputContainer,
    stream: VideoStream,
    stream_id: str,
    sampling: Sampling,
    *,
    guard: GuardSettings = DEFAULT_GUARD,
    budget: CpuBudget | None = None,
    rng: random.Random | None = None,
    stats: SampleStats | None = None,
    pace: Pace | None = None,
    max_lag_s: float | None = None,
    demuxer_skips_nonkey: bool = False,
    read_timeout_s: float | None = None,
    clock: Callable[[], float] = time.time,
    metered: bool = True,
) -> Iterator[Frame]:
    """Yield the sampled frames of ``stream``; undecodable packets are counted and skipped.

    ``stream_id`` names the stream in frames and errors: no secrets. ``pace`` releases
    packets as a publisher would (``replay.paced``). ``max_lag_s`` marks a live stream,
    read ahead in a thread; decoding skips to the newest keyframe when that far behind.
    ``demuxer_skips_nonkey`` (keyframes mode) lets FFmpeg drop non-key packets (~10x
    fewer from nginx-rtmp; ``stats.end_s`` then stops at the last keyframe).
    ``read_timeout_s``: the source's ``rw_timeout``, to tell a stall from an end.
    ``metered=False`` leaves the service's metrics alone (the evaluation harness).
    Raises SourceUnwatchable when packets keep coming and none gives a frame to hash
    for ``guard.unwatchable_after_s``: the caller reports it and reopens the stream.
    """
    stats = stats if stats is not None else SampleStats()
    if sampling.mode == "keyframes" and demuxer_skips_nonkey:
        stream.discard = Discard.nonkey
    time_base = stream.time_base
    assert time_base is not None  # FFmpeg gives every stream it demuxes one
    decoders = StreamDecoders(
        stream, time_base, stats, chain_skip=_chain_skip(sampling), metered=metered
    )
    live = max_lag_s is not None or pace is not None
    chooser = picker(
        sampling, decoders, guard, rng=rng or unpredictable(), budget=budget, live=live
    )
    stats.picker = chooser.stats
    counted = _CountedPackets(chooser, stats, time_base, metered)
    packets = _demux(container, stream, stream_id, stats, read_timeout_s)
    if pace is not None:
        packets = pace(packets)
    feed, arrivals = _arrivals(packets, stats, stream_id, max_lag_s, clock, metered)
    # Only a live stream (one read ahead) is found unwatchable.
    after_s = guard.unwatchable_after_s if feed is not None else None
    watch = _Watch(stream_id, stats, after_s, metered)
    try:
        for packet, received_at in arrivals:
            picks = counted.picks(packet, received_at)
            watch.packet(bool(picks), received_at)
            for pick in picks:
                yield _frame(pick, decoders, stream_id, received_at, stats, metered)
    finally:
        if feed is not None:
            feed.close()


def _chain_skip(sampling: Sampling) -> ChainSkip:
    """What the GOP chain's decoder may skip: non-reference frames, unless every frame
    is a candidate (interval mode)."""
    return "DEFAULT" if sampling.mode == "interval" else "NONREF"


def _arrivals(
    packets: Iterator[VideoPacket],
    stats: SampleStats,
    stream_id: str,
    max_lag_s: float | None,
    clock: Callable[[], float],
    metered: bool,
) -> tuple[PacketFeed | None, Iterator[tuple[VideoPacket, float]]]:
    """Each packet with its wall-clock arrival. A live stream (``max_lag_s`` given) is read
    ahead in a thread: the feed, which the caller closes."""
    feed = (
        PacketFeed(
            packets,
            stats,
            max_backlog_s=max_lag_s,
            clock=clock,
            name=f"demux-{stream_id}",
            metered=metered,
        )
        if max_lag_s is not None
        else None
    )
    arrivals = iter(feed) if feed is not None else ((packet, clock()) for packet in packets)
    return feed, arrivals


class _CountedPackets:
    """A stream's packets given to its picker, each counted in ``stats`` first (packets,
    keyframes, where the stream ends, the publisher's lag)."""

    def __init__(
        self,
        chooser: Picker[VideoPacket, av.VideoFrame],
        stats: SampleStats,
        time_base: Fraction,
        metered: bool,
    ) -> None:
        self._chooser = chooser
        self._metered = metered
        self._stats = stats
        self._tb_num, self._tb_den = time_base.numerator, time_base.denominator
        self._lag = PublisherLag()

    def picks(self, packet: VideoPacket, received_at: float) -> list[Pick[av.VideoFrame]]:
        """The frames to hash this packet gives; the empty packet at the end flushes."""
        if not packet.size:
            return self._chooser.finish()
        stats, tb_num, tb_den = self._stats, self._tb_num, self._tb_den
        times = _times(packet, tb_num, tb_den)
        stats.packets += 1
        stats.keyframes += times.key
        if times.pts_s is not None:
            stats.end_s = times.pts_s + (packet.duration or 0) * tb_num / tb_den
            stats.lag_s = self._lag(received_at, times.pts_s)
        picks = self._chooser.packet(times, packet)
        interval_s = self._chooser.stats.keyframe_interval_s if times.key else None
        if self._metered and interval_s is not None:
            metrics.KEYFRAME_INTERVAL.observe(interval_s)
        return picks


class _Watch:
    """Wall time since the last sample (or the first packet): packets that keep coming
    for ``after_s`` (None: never) with nothing to hash make the stream unwatchable."""

    def __init__(
        self, stream_id: str, stats: SampleStats, after_s: float | None, metered: bool
    ) -> None:
        self._stream_id = stream_id
        self._stats = stats
        self._after_s = after_s
        self._metered = metered
        self._watched_at: float | None = None

    def packet(self, sampled: bool, received_at: float) -> None:
        """After each packet; raises SourceUnwatchable (see ``_unwatchable``)."""
        if sampled:
            self._watched_at = received_at
            self._stats.unwatchable_reason = None
        elif self._watched_at is None:
            self._watched_at = received_at
        elif self._after_s is not None and received_at - self._watched_at > self._after_s:
            for_s = received_at - self._watched_at
            _unwatchable(self._stream_id, self._stats, for_s, self._metered)


def _times(packet: VideoPacket, tb_num: int, tb_den: int) -> PacketTimes:
    pts_s = None if packet.pts is None else packet.pts * tb_num / tb_den
    dts_s = None if packet.dts is None else packet.dts * tb_num / tb_den
    return PacketTimes(pts_s, dts_s, packet.is_keyframe, packet.size)


def _frame(
    pick: Pick[av.VideoFrame],
    decoders: StreamDecoders,
    stream_id: str,
    received_at: float,
    stats: SampleStats,
    metered: bool,
) -> Frame:
    stats.frames_sampled += 1
    if metered:
        metrics.SAMPLES.labels(pick.reason).inc()
    # Hashed as shown: orientation.py.
    luma = displayed(frame_luma(pick.frame), decoders.matrix(pick.frame))
    height, width = luma.shape
    return Frame(stream_id, pick.pts_s, received_at, luma, width, height, pick.reason)


def _unwatchable(stream_id: str, stats: SampleStats, for_s: float, metered: bool) -> None:
    """Raise if packets kept coming for a reason streamguard knows and none gave a sample.

    Without a known reason (keyframes mode on a long GOP, say) the stream is only slow."""
    reason = stats.unwatchable_reason or ("no_keyframe" if not stats.keyframes else None)
    if reason is None:
        return
    if metered:
        metrics.UNWATCHABLE.labels(reason).inc()
    detail = stats.last_error if reason != "no_keyframe" else "no keyframe received"
    message = f"{stream_id}: nothing to hash for {for_s:.1f} s ({detail})"
    raise SourceUnwatchable(message, reason, for_s)


def _demux(
    container: InputContainer,
    stream: VideoStream,
    stream_id: str,
    stats: SampleStats,
    read_timeout_s: float | None,
) -> Iterator[VideoPacket]:
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
    yield cast(VideoPacket, av.Packet())  # PyAV types a new packet as of no stream in particular
