"""What one connection's sampler has done, for /streams, logs and the worker."""

from dataclasses import dataclass, field

from streamguard.errors import UnwatchableCause
from streamguard.ingest.picking import PickerStats


@dataclass(slots=True)
class SampleStats:
    packets: int = 0
    frames_decoded: int = 0
    frames_sampled: int = 0
    decode_errors: int = 0
    too_large: int = 0  # frames left out for their size
    last_error: str = field(default="")
    end_s: float | None = None  # stream time reached by the last packet read
    lag_s: float = 0.0  # arrival behind the stream's own clock: the publisher's pacing
    backlog_s: float = 0.0  # how long read packets wait for decoding (streamguard's own lag)
    live_edge_skips: int = 0  # times decoding jumped ahead to the newest keyframe
    keyframes: int = 0  # keyframes read
    # Why nothing was sampled since the last sample, if known.
    unwatchable_reason: UnwatchableCause | None = None
    picker: PickerStats = field(default_factory=PickerStats)
