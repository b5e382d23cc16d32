"""The kill/review event platforms receive (DESIGN.md, "Kill/review event")."""

import uuid
from datetime import UTC, datetime
from typing import Any

from streamguard.detect.matcher import Match

SCHEMA = "streamguard.event.v1"
_EVENT_NAMESPACE = uuid.UUID("5f0c1e9a-7d1b-4c3e-9a55-2b8f6e4d7c10")


def rfc3339(timestamp: float) -> str:
    """UTC, millisecond precision, ``Z`` suffix."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(stream_id: str, entry_list: str, entry_id: str, pts_s: float) -> str:
    """Deterministic, so a retried or failed-over decision can be dropped as a duplicate."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{stream_id}\n{entry_list}\n{entry_id}\n{pts_s:.3f}"))


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
        "event_id": event_id(frame.stream_id, hit.entry.list, hit.entry.id, frame.pts_s),
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
        "match": match_fields(match),
        "confirmations": confirmations,
        "worker_id": worker_id,
    }
