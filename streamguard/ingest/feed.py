"""Read a live stream's packets in a thread of their own, ahead of decoding.

With reading and decoding in one thread, a publisher that pauses and then sends its
backlog at once looks exactly like a reader that fell behind: both show packets
arriving late against the stream's clock. Reading ahead tells them apart. Packets
wait between the two threads only while decoding is slower than reading, so their
wait (``backlog_s``) is streamguard's own lag, and the stream-clock lag at arrival
(``lag_s``) is the publisher's. Only the first is a reason to skip: past
``max_backlog_s`` decoding jumps to the newest keyframe it has, and the keyframes it
passes over are counted. A burst, however late against the stream's clock, is decoded
in full (docs/sampling.md).

Handing every packet over would wake the decoding thread 30 to 60 times a second per
stream; with hundreds of streams those wake-ups (and the GIL taken for each) cost more
than the decoding of their keyframes (measured: 1.4 ms of CPU per stream-second at 100
streams). So the reader wakes it for keyframes, the stream's end, and a batch of
WAKE_PACKETS; other packets wait at most WAKE_S to be looked at.
"""

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from streamguard.ingest.source import VideoPacket
from streamguard.ingest.stats import SampleStats
from streamguard.observability import metrics


class _End:
    """What the reader leaves after the stream's last packet."""


_END = _End()
_Read = tuple[VideoPacket, float] | BaseException | _End  # a packet and its arrival time
WAKE_S = 0.25
WAKE_PACKETS = 32
MAX_READ_AHEAD_BYTES = 8 * 2**20
"""Reading waits while this much is read and not yet decoded or dropped (a hung decode):
the server then sees a slow reader."""


class PacketFeed:
    """Iterate to get (packet, arrival time); ``close()`` ends the reading thread.

    Skips are counted in ``stats``, and if ``metered`` in the service's Prometheus metrics."""

    def __init__(
        self,
        packets: Iterator[VideoPacket],
        stats: SampleStats,
        *,
        max_backlog_s: float,
        max_bytes: int = MAX_READ_AHEAD_BYTES,
        clock: Callable[[], float] = time.time,
        name: str = "read",
        metered: bool = True,
    ) -> None:
        self._packets = packets
        self._stats = stats
        self._metered = metered
        self._max_backlog_s = max_backlog_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._inbox: deque[_Read] = deque()  # read, not yet taken
        self._wake = threading.Event()
        # What has been read and not yet decoded: packets with their arrival time, then
        # possibly the end of the stream or the error that ended it.
        self._pending: deque[_Read] = deque()
        # Bytes read, and bytes decoded or dropped: each written by one thread only.
        self._read_bytes = 0
        self._done_bytes = 0
        self._room = threading.Event()
        self._room.set()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for packet in self._packets:
                if self._closed:
                    return
                self._inbox.append((packet, self._clock()))
                if packet.is_keyframe or len(self._inbox) >= WAKE_PACKETS:
                    self._wake.set()
                self._read_bytes += packet.size
                if self._read_bytes - self._done_bytes > self._max_bytes:
                    self._room.clear()
                    if self._read_bytes - self._done_bytes > self._max_bytes:
                        self._room.wait()
        except BaseException as exc:  # handed to the consumer, who raises it
            self._inbox.append(exc)
        else:
            self._inbox.append(_END)
        self._wake.set()

    def __iter__(self) -> Iterator[tuple[VideoPacket, float]]:
        while True:
            self._fill()
            item = self._pending.popleft()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            packet, received_at = item
            self._done(packet)
            yield packet, received_at

    def _fill(self) -> None:
        """Take whatever has been read; skip ahead if decoding has fallen behind."""
        inbox = self._inbox
        if not self._pending:
            while not inbox:
                self._wake.wait(WAKE_S)
                self._wake.clear()
        while inbox:
            self._pending.append(inbox.popleft())
        oldest = self._pending[0]
        if isinstance(oldest, tuple):
            self._stats.backlog_s = max(0.0, self._clock() - oldest[1])
            if self._stats.backlog_s > self._max_backlog_s:
                self._skip_to_newest_keyframe()

    def _skip_to_newest_keyframe(self) -> None:
        """Drop what waits before the newest keyframe read, if there is a newer one than
        the packet next in line; without one, decoding goes on where it is."""
        pending = self._pending
        keyframes = (
            i for i, item in enumerate(pending) if isinstance(item, tuple) and item[0].is_keyframe
        )
        newest = max(keyframes, default=0)
        if not newest:
            return
        self._stats.live_edge_skips += 1
        if self._metered:
            metrics.LIVE_EDGE_SKIPS.inc()
        for _ in range(newest):
            item = pending.popleft()
            assert isinstance(item, tuple)  # the end or an error can only come last
            self._dropped(item[0])

    def _done(self, packet: VideoPacket) -> None:
        self._done_bytes += packet.size
        room = self._room
        if not room.is_set() and self._read_bytes - self._done_bytes <= self._max_bytes:
            room.set()

    def _dropped(self, packet: VideoPacket) -> None:
        self._done(packet)
        if packet.is_keyframe:
            self._stats.picker.skipped["decode_backlog"] += 1
            if self._metered:
                metrics.SAMPLES_SKIPPED.labels("decode_backlog").inc()

    def close(self) -> None:
        """Stop reading; returns once the thread has left FFmpeg (at most a read timeout),
        so that the container can be closed safely."""
        self._closed = True
        self._room.set()
        self._thread.join()
