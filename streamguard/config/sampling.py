"""What a stream's sampling mode is, and the knobs of ``guard``, the default.

- ``keyframes``: only keyframes are decoded. Cheapest; blind to anything a publisher
  shows between keyframes.
- ``interval:S``: every frame is decoded, at most one per S seconds of stream time is
  hashed. Sees everything, at the cost of a full decode.
- ``guard``: keyframes, plus non-key frames where keyframes do not give the
  guarantees of docs/sampling.md: a sample at least every ``max_gap_s`` of stream
  time whatever the keyframe interval, and random probes between keyframes.
"""

import math
from dataclasses import dataclass
from typing import Literal

Mode = Literal["guard", "keyframes", "interval"]
MODES: tuple[Mode, ...] = ("guard", "keyframes", "interval")


@dataclass(frozen=True, slots=True)
class Sampling:
    """A mode; ``interval_s`` only for ``interval``."""

    mode: Mode = "guard"
    interval_s: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Sampling":
        if text == "guard":
            return cls("guard")
        if text == "keyframes":
            return cls("keyframes")
        name, _, value = text.partition(":")
        try:
            interval_s = float(value)
        except ValueError:
            interval_s = -1.0
        if name != "interval" or not 0 < interval_s < math.inf:  # inf: only the first frame
            raise ValueError(
                f"sampling {text[:40]!r}: expected 'guard', 'keyframes' or 'interval:SECONDS' (> 0)"
            )
        return cls("interval", interval_s)

    def __str__(self) -> str:
        return f"interval:{self.interval_s:g}" if self.mode == "interval" else self.mode


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """``[sampling]``: what ``guard`` guarantees and what it may spend (docs/sampling.md)."""

    max_gap_s: float = 2.0  # never longer than this in stream time without a sample
    probe_every_s: float = 15.0  # mean stream time between random probes of one stream
    probe_cpu: float = 0.1  # CPU cores one process may spend decoding for probes and cuts
    min_gap_s: float = 0.5  # keyframes closer than about this to the last sample are skipped
    max_samples_per_s: float = 4.0  # wall-clock rate cap of one stream's samples (floods)
    sample_burst: int = 30  # samples a stream may take at once (a publisher's burst)
    unwatchable_after_s: float = 5.0  # receiving, but nothing to hash, this long: review
    max_gop_buffer_mb: int = 64  # a GOP's undecoded packets kept beyond this are decoded

    def __post_init__(self) -> None:
        if self.min_gap_s > self.max_gap_s / 2:
            raise ValueError(
                f"sampling: min_gap_s ({self.min_gap_s:g}) must be at most half of "
                f"max_gap_s ({self.max_gap_s:g})"
            )
