"""Hash a sampled frame and look its hashes up in the blocklist."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from streamguard.blocklist.memory import Blocklist, Hit
from streamguard.hashing import FrameHash, hash_luma
from streamguard.ingest.sampler import Frame
from streamguard.observability import metrics


@dataclass(frozen=True, slots=True)
class Match:
    """A frame whose hash is within threshold of a blocklist entry."""

    frame: Frame
    hash: FrameHash
    hit: Hit
    decided_at: float

    @property
    def latency_s(self) -> float:
        """From reading the frame's packet to the decision."""
        return self.decided_at - self.frame.received_at


def strongest(matches: list[Match]) -> Match:
    """The match closest to its entry relative to its threshold (algorithms differ in bits)."""
    return min(matches, key=lambda match: match.hit.distance / max(match.hit.threshold, 1))


@dataclass(slots=True)
class MatchStats:
    frames: int = 0
    low_quality: int = 0
    matches: int = 0


class FrameMatcher:
    """Computes only the hashes the blocklist has entries for."""

    def __init__(self, blocklist: Blocklist, *, clock: Callable[[], float] = time.time) -> None:
        self.blocklist = blocklist
        self.stats = MatchStats()
        self._clock = clock

    def __call__(self, frame: Frame) -> list[Match]:
        started = time.perf_counter()
        self.stats.frames += 1
        matches = []
        for frame_hash in hash_luma(frame.luma, self.blocklist.algos):
            if not frame_hash.matchable:
                self.stats.low_quality += 1
                metrics.FRAMES_LOW_QUALITY.inc()
                continue
            hits = self.blocklist.search(frame_hash.algo, frame_hash.digest)
            if hits:
                decided_at = self._clock()
                matches += [Match(frame, frame_hash, hit, decided_at) for hit in hits]
        self.stats.matches += len(matches)
        for match in matches:
            metrics.MATCHES.labels(match.hash.algo, match.hit.entry.category).inc()
        metrics.HASH_DURATION.observe(time.perf_counter() - started)
        return matches
