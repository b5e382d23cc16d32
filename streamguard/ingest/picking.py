"""What every picker shares: the decoder it drives, a packet's times, its picks, its stats.

A picker decides which packets to decode and which decoded frames to hash (pickers.py,
guard_picker.py); it sees packets and frames only through these types, so its rules are
tested without video.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

P = TypeVar("P")  # a packet
F = TypeVar("F")  # a frame
P_contra = TypeVar("P_contra", contravariant=True)  # a packet a protocol's methods take


class Decoder(Protocol[P_contra, F]):
    """Two decoders of one stream: keyframes on their own, and a chain of a GOP's packets."""

    def alone(self, packet: P_contra) -> list[F]:
        """Decode a keyframe by itself, at once (no reordering delay)."""

    def feed(self, packet: P_contra) -> list[F]:
        """Decode the next packet of the chain; frames come out in display order."""

    def drain(self) -> list[F]:
        """End the chain: the frames it still holds; the next feed must be a keyframe."""

    def pts_s(self, frame: F) -> float | None:
        """A frame's stream time."""


@dataclass(frozen=True, slots=True)
class PacketTimes:
    pts_s: float | None
    dts_s: float | None
    key: bool
    size: int

    @property
    def sent_s(self) -> float | None:
        """Decoding time: every frame shown before it comes in an earlier packet."""
        return self.dts_s if self.dts_s is not None else self.pts_s


SampleReason = Literal["keyframe", "gap", "probe", "cut", "interval"]
"""Why a frame was sampled (streamguard_samples_total's ``reason``)."""


@dataclass(frozen=True, slots=True)
class Pick(Generic[F]):
    frame: F
    pts_s: float
    reason: SampleReason


@dataclass(slots=True)
class PickerStats:
    """What a picker did, for /streams and metrics."""

    keyframe_interval_s: float | None = None
    decoding_beyond_keyframes: bool = False
    probes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> samples not taken
    probe_cpu_s: float = 0.0


class Picker(Protocol[P_contra, F]):
    stats: PickerStats

    def packet(self, times: PacketTimes, packet: P_contra) -> list[Pick[F]]: ...

    def finish(self) -> list[Pick[F]]: ...
