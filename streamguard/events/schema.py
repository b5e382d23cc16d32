"""The kill/review event platforms receive (DESIGN.md, "Kill/review event"), as a value.

An `Event` is built where a decision is taken and turned into JSON once, by the sink.
The JSON Schema is ``event.schema.json`` next to this file; docs/events.md explains
each field and how to deduplicate.
"""

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from streamguard.errors import UnwatchableCause

SCHEMA = "streamguard.event.v1"
SCHEMA_FILE = Path(__file__).with_name("event.schema.json")
_EVENT_NAMESPACE = uuid.UUID("5f0c1e9a-7d1b-4c3e-9a55-2b8f6e4d7c10")


class Action(StrEnum):
    KILL = "kill"
    REVIEW = "review"


class Reason(StrEnum):
    MATCH = "match"  # a blocklist entry matched
    UNWATCHABLE = "unwatchable"  # the stream sends nothing streamguard can look at
    INCIDENT = "incident"  # an incident was opened on the stream (docs/incidents.md)
    STILL_LIVE = "still_live"  # the stream still publishes after a kill: the kill, repeated


def json_schema() -> dict[str, Any]:
    """The shipped JSON Schema of events."""
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def rfc3339(timestamp: float) -> str:
    """UTC, millisecond precision, ``Z`` suffix."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(
    stream_id: str, entry_list: str, entry_id: str, pts_s: float, broadcast_ms: int
) -> str:
    """Deterministic, so a retried or failed-over decision can be dropped as a duplicate.

    Besides the stream, the entry and the frame's stream time, the id names the
    broadcast (the start of its timeline, runtime/broadcast.py): a publisher that
    restarts shows the same stream times again, and its new kill must not look like a
    copy of the old one. Workers in a cluster agree on the broadcast's name, so two of
    them deciding on the same frame give it the same id.
    """
    name = f"{stream_id}\n{entry_list}\n{entry_id}\n{pts_s:.3f}\n{broadcast_ms}"
    return str(uuid.uuid5(_EVENT_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class Evidence:
    """The blocklist entry that matched, and how closely: the event's ``match`` object,
    also a line of ``scan --json``."""

    algo: str
    distance: int
    threshold: int
    quality: int | None
    entry_id: str
    list: str
    category: str
    label: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class VideoMatch:
    """A known video the stream airs (detect/video.py): the event's ``video`` object, also a
    line of ``scan --json``."""

    id: str
    offset_s: float  # video time minus stream time at the latest aligned frame
    frames_matched: int  # samples whose matches line up with the video
    window_s: float  # stream time those samples span
    coverage: float  # share of the samples in that span that line up

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "offset_s": round(self.offset_s, 3),
            "frames_matched": self.frames_matched,
            "window_s": round(self.window_s, 3),
            "coverage": round(self.coverage, 3),
        }


@dataclass(frozen=True, slots=True)
class FrameSeen:
    """The frame the decision was taken on: its stream time and when its packet arrived."""

    pts_s: float
    received_at: float
    width: int | None = None  # unknown for an unwatchable stream
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        seen: dict[str, Any] = {"pts_s": round(self.pts_s, 3)}
        seen["received_at"] = rfc3339(self.received_at)
        if self.width is not None:
            seen["width"], seen["height"] = self.width, self.height
        return seen


@dataclass(frozen=True, slots=True)
class Unwatchable:
    cause: UnwatchableCause
    detail: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """A kill repeated because the stream still publishes after it: the event's
    ``escalation`` object."""

    of: str  # the kill's event_id
    number: int  # 1 for its first repetition
    killed_at: float  # when the kill was decided

    def to_json(self) -> dict[str, Any]:
        return {"of": self.of, "number": self.number, "killed_at": rfc3339(self.killed_at)}


@dataclass(frozen=True, slots=True)
class Event:
    """A decision on a stream. ``stream_url`` must already be redacted."""

    action: Action
    stream_id: str
    stream_url: str
    worker_id: str
    frame: FrameSeen
    detected_at: float
    match: Evidence | None = None  # reason match
    unwatchable: Unwatchable | None = None  # reason unwatchable
    confirmations: int = 1
    video: VideoMatch | None = None  # decided on a known video's frames
    incident: str = ""  # reason incident: the incident's id
    broadcast_ms: int = 0  # the broadcast's name: its timeline's start (runtime/broadcast.py)
    escalation: Escalation | None = None  # reason still_live

    @property
    def reason(self) -> Reason:
        if self.escalation is not None:
            return Reason.STILL_LIVE
        if self.incident:
            return Reason.INCIDENT
        return Reason.MATCH if self.match is not None else Reason.UNWATCHABLE

    @property
    def latency_s(self) -> float:
        """From reading the deciding frame's packet to the decision."""
        return max(self.detected_at - self.frame.received_at, 0.0)

    @property
    def event_id(self) -> str:
        if self.escalation is not None:  # as many as the kill is repeated: named by number
            escalation = self.escalation
            entry_id = f"still_live:{escalation.of}:{escalation.number}"
            return event_id(self.stream_id, "streamguard", entry_id, 0.0, 0)
        if self.match is not None:
            entry_list, entry_id = self.match.list, self.match.entry_id
        elif self.incident:
            entry_list, entry_id = "streamguard", f"incident:{self.incident}"
        else:
            cause = self.unwatchable.cause if self.unwatchable else ""
            entry_list, entry_id = "streamguard", f"unwatchable:{cause}"
        return event_id(self.stream_id, entry_list, entry_id, self.frame.pts_s, self.broadcast_ms)

    def to_json(self) -> dict[str, Any]:
        """The event as platforms receive it (event.schema.json)."""
        body: dict[str, Any] = {
            "schema": SCHEMA,
            "event_id": self.event_id,
            "action": str(self.action),
            "stream_id": self.stream_id,
            "stream_url": self.stream_url,
            "detected_at": rfc3339(self.detected_at),
            "latency_ms": round(self.latency_s * 1000),
            "frame": self.frame.to_json(),
            "reason": str(self.reason),
        }
        if self.match is not None:
            body["match"] = self.match.to_json()
        if self.video is not None:
            body["video"] = self.video.to_json()
        if self.unwatchable is not None:
            body["unwatchable"] = asdict(self.unwatchable)
        if self.incident:
            body["incident"] = {"id": self.incident, "list": f"incident-{self.incident}"}
        if self.escalation is not None:
            body["escalation"] = self.escalation.to_json()
        body["confirmations"] = self.confirmations
        body["worker_id"] = self.worker_id
        return body
