"""The recent frame hashes of one watched stream, for incident mode (docs/incidents.md).

Hashes only, never pictures: a frame's own PDQ (as is, no transform), kept only if the
matcher would look it up (quality at least 50, not near a featureless picture), so a
degenerate hash never enters an incident list. Bounded twice: by stream time
(``max_s``) and by count (``max_frames``); a kept frame costs about 100 bytes, so the
default 120 s ring of a stream sampled at 10 frames a second holds some 120 kB.

Written by the hash threads, read by the event loop: one lock around the deque.
"""

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecentFrame:
    pts_s: float  # stream time
    received_at: float  # wall clock, when its packet arrived
    digest: bytes  # PDQ, 32 bytes
    quality: int
    width: int
    height: int
    broadcast_ms: int = 0  # its broadcast's timeline start (runtime/broadcast.py)


class RecentHashes:
    """A ring of one stream's recent matchable PDQ hashes, oldest first."""

    def __init__(self, max_s: float, max_frames: int) -> None:
        self.max_s = max_s
        self._frames: deque[RecentFrame] = deque(maxlen=max_frames)
        self._lock = threading.Lock()

    def add(self, frame: RecentFrame) -> None:
        """Keep ``frame``; forget frames older than ``max_s`` before it. Stream time
        running backwards (the publisher restarted, a timestamp reset) starts the ring
        afresh: its times are another broadcast's."""
        with self._lock:
            frames = self._frames
            if frames and frame.pts_s < frames[-1].pts_s:
                frames.clear()
            frames.append(frame)
            while frames[0].pts_s < frame.pts_s - self.max_s:
                frames.popleft()

    def last(self, seconds: float) -> list[RecentFrame]:
        """The frames of the last ``seconds`` of stream time (up to ``max_s``), oldest first."""
        with self._lock:
            if not self._frames:
                return []
            since = self._frames[-1].pts_s - min(seconds, self.max_s)
            return [frame for frame in self._frames if frame.pts_s >= since]

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)
