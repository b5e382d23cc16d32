"""What one connection's sampler has done, for /streams, logs and the worker."""

from dataclasses import dataclass, field

from streamguard.errors import MediaTooLarge, SourceError, UnwatchableCause
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

    def check_complete(self, shown: str, total_s: float | None, until_s: float | None) -> None:
        """Raise SourceError unless the whole source (``shown``, as far as ``until_s`` if
        given, of ``total_s`` declared) was looked at: one that ended early, or had frames
        left out for their size, cannot be called clean; nor one with no decodable frame."""
        if until_s is None and total_s and self.end_s is not None and self.end_s < total_s - 1:
            raise SourceError(
                f"{shown}: ended at {self.end_s:.1f} s of {total_s:.1f} s (truncated?)"
            )
        if self.too_large:
            size = self.last_error.removeprefix("a frame is ")
            what = "part of the video is" if self.frames_sampled else "video is"
            raise MediaTooLarge(f"{shown}: {what} {size}")
        if self.frames_sampled == 0:
            reason = f" ({self.last_error})" if self.decode_errors else ""
            raise SourceError(f"{shown}: no decodable video frames{reason}")
