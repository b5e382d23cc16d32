"""Which packets to decode, and which decoded frames to hash: one picker per sampling mode.

Pure logic over a :class:`Decoder`, so that every rule a publisher could try to pull
(late keyframes, keyframe dodging, floods of keyframes) is tested without video.
``keyframes`` and ``interval`` are here; ``guard``, the default, is in guard_picker.py
(docs/sampling.md).
"""

import random
import time
from collections.abc import Callable
from typing import Generic

from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.ingest.budget import CpuBudget
from streamguard.ingest.guard_picker import GuardPicker
from streamguard.ingest.picking import Decoder, F, P, PacketTimes, Pick, Picker, PickerStats
from streamguard.ingest.spacing import SampleSpacing


class KeyframePicker(Generic[P, F]):
    """``keyframes``: each keyframe decoded on its own, non-key packets never."""

    def __init__(
        self,
        decoder: Decoder[P, F],
        settings: GuardSettings,
        rng: random.Random,
        clock: Callable[[], float] | None = time.monotonic,
    ) -> None:
        self.stats = PickerStats()
        self._decoder = decoder
        self._spacing = SampleSpacing(settings, rng, self.stats, clock)
        self._key_s: float | None = None

    def packet(self, times: PacketTimes, packet: P) -> list[Pick[F]]:
        if not times.key or times.pts_s is None:
            return []
        if self._key_s is not None and times.pts_s > self._key_s:
            self.stats.keyframe_interval_s = times.pts_s - self._key_s
        self._key_s = times.pts_s
        if not self._spacing.keyframe_due(times.pts_s) or not self._spacing.take():
            return []
        picks = []
        for frame in self._decoder.alone(packet):
            if (pts_s := self._decoder.pts_s(frame)) is not None:
                self._spacing.taken(pts_s)
                picks.append(Pick(frame, pts_s, "keyframe"))
        return picks

    def finish(self) -> list[Pick[F]]:
        return []


class IntervalPicker(Generic[P, F]):
    """``interval:S``: every frame decoded, at most one hashed per S seconds."""

    def __init__(self, decoder: Decoder[P, F], interval_s: float) -> None:
        self.stats = PickerStats(decoding_beyond_keyframes=True)
        self._decoder = decoder
        self._interval_s = interval_s
        self._last_s: float | None = None
        self._key_s: float | None = None

    def packet(self, times: PacketTimes, packet: P) -> list[Pick[F]]:
        if times.key and times.pts_s is not None:
            if self._key_s is not None and times.pts_s > self._key_s:
                self.stats.keyframe_interval_s = times.pts_s - self._key_s
            self._key_s = times.pts_s
        return self._picks(self._decoder.feed(packet))

    def finish(self) -> list[Pick[F]]:
        return self._picks(self._decoder.drain())

    def _picks(self, frames: list[F]) -> list[Pick[F]]:
        picks = []
        for frame in frames:
            pts_s = self._decoder.pts_s(frame)
            if pts_s is None:
                continue
            if self._last_s is not None and pts_s < self._last_s + self._interval_s:
                continue
            self._last_s = pts_s
            picks.append(Pick(frame, pts_s, "interval"))
        return picks


def picker(
    sampling: Sampling,
    decoder: Decoder[P, F],
    settings: GuardSettings,
    *,
    rng: random.Random,
    budget: CpuBudget | None = None,
    live: bool = True,
) -> Picker[P, F]:
    """The picker of ``sampling``'s mode; ``live`` streams have a wall-clock rate cap."""
    clock = time.monotonic if live else None
    if sampling.mode == "interval":
        assert sampling.interval_s is not None
        return IntervalPicker(decoder, sampling.interval_s)
    if sampling.mode == "keyframes":
        return KeyframePicker(decoder, settings, rng, clock)
    return GuardPicker(decoder, settings, rng, budget, clock=clock)
