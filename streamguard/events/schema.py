"""The kill/review event platforms receive (DESIGN.md, "Kill/review event").

The JSON Schema is ``event.schema.json`` next to this file; docs/events.md explains
each field and how to deduplicate.
"""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamguard.detect.matcher import Match

SCHEMA = "streamguard.event.v1"
SCHEMA_FILE = Path(__file__).with_name("event.schema.json")
SESSION_BUCKET_S = 10.0
_EVENT_NAMESPACE = uuid.UUID("5f0c1e9a-7d1b-4c3e-9a55-2b8f6e4d7c10")


def json_schema() -> dict[str, Any]:
    """The shipped JSON Schema of events."""
    return json.loads(SCHEMA_FILE.read_text())


def rfc3339(timestamp: float) -> str:
    """UTC, millisecond precision, ``Z`` suffix."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(
    stream_id: str, entry_list: str, entry_id: str, pts_s: float, received_at: float
) -> str:
    """Deterministic, so a retried or failed-over decision can be dropped as a duplicate.

    Besides the stream, the entry and the frame's stream time, the id includes the
    broadcast's start (arrival minus stream time) in 10 s steps: a publisher that
    restarts shows the same stream times again, and its new incident must not look
    like a duplicate of the old one. Two workers deciding on the same frame agree
    unless their arrival times straddle a step.
    """
    session = int((received_at - pts_s) // SESSION_BUCKET_S)
    name = f"{stream_id}\n{entry_list}\n{entry_id}\n{pts_s:.3f}\n{session}"
    return str(uuid.uuid5(_EVENT_NAMESPACE, name))


def match_fields(match: Match) -> dict[str, Any]:
    """What was matched: the event's ``match`` object, also scan's JSON output."""
    hit = match.hit
    return {
        "algo": match.hash.algo,
        "distance": hit.distance,
        "threshold": hit.threshold,
        "quality": match.hash.quality,
        "entry_id": hit.entry.id,
        "list": hit.entry.list,
        "category": hit.entry.category,
        "label": hit.entry.label,
    }


def build_event(
    match: Match, *, action: str, stream_url: str, worker_id: str, confirmations: int = 1
) -> dict[str, Any]:
    """The event for ``match``; ``stream_url`` must already be redacted."""
    frame, hit = match.frame, match.hit
    return {
        "schema": SCHEMA,
        "event_id": event_id(
            frame.stream_id, hit.entry.list, hit.entry.id, frame.pts_s, frame.received_at
        ),
        "action": action,
        "stream_id": frame.stream_id,
        "stream_url": stream_url,
        "detected_at": rfc3339(match.decided_at),
        "latency_ms": round(match.latency_s * 1000),
        "frame": {
            "pts_s": round(frame.pts_s, 3),
            "received_at": rfc3339(frame.received_at),
            "width": frame.width,
            "height": frame.height,
        },
        "reason": "match",
        "match": match_fields(match),
        "confirmations": confirmations,
        "worker_id": worker_id,
    }


def unwatchable_event(
    *,
    stream_id: str,
    action: str,
    cause: str,
    detail: str,
    stream_url: str,
    worker_id: str,
    pts_s: float | None,
    received_at: float,
) -> dict[str, Any]:
    """The event for a stream that sends nothing streamguard can look at (docs/sampling.md):
    no ``match``, an ``unwatchable`` object with the cause, ``frame`` at the last packet."""
    pts_s = round(pts_s or 0.0, 3)
    return {
        "schema": SCHEMA,
        "event_id": event_id(stream_id, "streamguard", f"unwatchable:{cause}", pts_s, received_at),
        "action": action,
        "stream_id": stream_id,
        "stream_url": stream_url,
        "detected_at": rfc3339(received_at),
        "latency_ms": 0,
        "frame": {"pts_s": pts_s, "received_at": rfc3339(received_at)},
        "reason": "unwatchable",
        "unwatchable": {"cause": cause, "detail": detail},
        "confirmations": 1,
        "worker_id": worker_id,
    }
