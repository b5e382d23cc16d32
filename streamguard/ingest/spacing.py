"""The stream's cap on samples, against floods of keyframes (docs/sampling.md)."""

import math
import random
from collections.abc import Callable

from streamguard.config.sampling import GuardSettings
from streamguard.ingest.budget import TokenBucket
from streamguard.ingest.picking import PickerStats


class SampleSpacing:
    """The stream's sample cap (floods): a random minimum spacing of keyframe samples in
    stream time, and for live streams (``clock`` given) a wall-clock rate of samples. A
    file is read as fast as it decodes: there, only the spacing holds."""

    def __init__(
        self,
        settings: GuardSettings,
        rng: random.Random,
        stats: PickerStats,
        clock: Callable[[], float] | None,
    ) -> None:
        self._settings = settings
        self._rng = rng
        self._stats = stats
        self._rate = (
            None
            if clock is None
            else TokenBucket(settings.max_samples_per_s, settings.sample_burst, clock)
        )
        self._last_s = -math.inf
        self._next_key_s = -math.inf

    def keyframe_due(self, pts_s: float) -> bool:
        """Whether a keyframe is far enough after the last one sampled. Stream time that
        stands still or goes back tells nothing of spacing: only the rate cap holds."""
        if pts_s >= self._next_key_s or pts_s <= self._last_s:
            return True
        self._stats.skipped["min_gap"] += 1
        return False

    def take(self) -> bool:
        if self._rate is None or self._rate.take():
            return True
        self._stats.skipped["stream_cap"] += 1
        return False

    def taken(self, pts_s: float) -> None:
        self._last_s = pts_s
        self._next_key_s = pts_s + self._rng.uniform(0.0, 2 * self._settings.min_gap_s)
