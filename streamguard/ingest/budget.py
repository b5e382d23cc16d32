"""Token buckets: the CPU one process spends on probes, the samples one stream takes."""

import threading
import time
from collections.abc import Callable

from streamguard.observability import metrics


class TokenBucket:
    """``rate`` tokens a second up to ``capacity``; starts full. Not thread-safe."""

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if there are that many."""
        if self._refill() < tokens:
            return False
        self._tokens -= tokens
        return True

    def positive(self) -> bool:
        return self._refill() > 0

    def charge(self, tokens: float) -> None:
        """Take ``tokens`` spent already: the balance may go below zero (a debt)."""
        self._refill()
        self._tokens -= tokens


class CpuBudget:
    """CPU seconds that the streams of one process may spend on optional work (probes),
    ``cores`` per wall-clock second, shared by every stream's reader thread.

    Work is allowed while the balance is positive and charged by what it measured, so
    one expensive probe can overdraw it; the next probes wait until it is paid back.
    """

    def __init__(self, cores: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._bucket = TokenBucket(cores, max(cores, 0.1) * 2.0, clock)
        self._lock = threading.Lock()

    def allows(self) -> bool:
        with self._lock:
            return self._bucket.positive()

    def charge(self, cpu_s: float) -> None:
        metrics.PROBE_CPU.inc(cpu_s)
        with self._lock:
            self._bucket.charge(cpu_s)
