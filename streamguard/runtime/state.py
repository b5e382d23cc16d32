"""What each watched stream is doing, for /streams (and later the status topic)."""

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Watch(StrEnum):
    STARTING = "starting"
    WATCHING = "watching"
    RECONNECTING = "reconnecting"  # failed (error, stall); retrying with back-off
    ENDED = "ended"  # the publisher stopped; retrying in case it comes back
    FAILED = "failed"  # will not be retried (a refused or malformed URL)
    KILLED = "killed"  # a kill was decided; no longer watched (policy.keep_watching_after_kill)
    STOPPED = "stopped"


@dataclass(slots=True)
class StreamState:
    """Written by the stream's own threads, read by the HTTP server (plain attribute
    writes, so a reader sees each value whole)."""

    stream_id: str
    url: str  # redacted
    sample: str = "guard"  # the sampling mode in force
    state: Watch = Watch.STARTING
    since: float = field(default_factory=time.time)
    last_keyframe_at: float | None = None
    last_pts_s: float | None = None
    lag_s: float = 0.0  # arrival behind the stream's clock: the publisher's pacing
    backlog_s: float = 0.0  # read, not yet decoded: streamguard's own lag
    keyframe_interval_s: float | None = None  # observed
    beyond_keyframes: bool = False  # decoding non-key frames now (late keyframe, probe)
    probes: int = 0
    samples_skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    unwatchable: int = 0  # times reported as sending nothing to hash
    connects: int = 0
    reconnects: int = 0
    frames_sampled: int = 0
    frames_dropped: int = 0
    live_edge_skips: int = 0
    decode_errors: int = 0
    frames_too_large: int = 0  # left out, never hashed: larger than 8192 px on a side
    detections: int = 0
    escalations: int = 0  # kills repeated because the stream still published after one
    internal_errors: int = 0  # bugs caught per frame or per connection; should stay 0
    last_error: str = ""

    def enter(self, state: Watch, error: str = "") -> bool:
        """Move to ``state``; False if it is already there (so callers log once)."""
        if state == self.state and error == self.last_error:
            return False
        self.state, self.since = state, time.time()
        if error:
            self.last_error = error
        return True

    def snapshot(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data
