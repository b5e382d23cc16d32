"""Kill events from MQTT, checked before anything acts on them.

Only what enforcement relies on is checked (schema, action, stream id, event id);
the full JSON Schema is the consumer contract, not a dependency of this process.
``detected_at`` only feeds the kill latency metric: a kill without a usable one is
still a kill.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from streamguard.config import STREAM_ID
from streamguard.events.schema import SCHEMA

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_EVENT_ID_CHARS = 128


class InvalidEvent(ValueError):
    """The message is not a usable kill event; the text says why (never the payload)."""


@dataclass(frozen=True, slots=True)
class KillOrder:
    event_id: str
    stream_id: str
    detected_at: float | None  # POSIX seconds


def parse_kill(payload: bytes, topic_stream_id: str) -> KillOrder | None:
    """The kill in ``payload``, sent to ``PREFIX/v1/kill/{topic_stream_id}``.

    Returns None for a well-formed event that is not a kill (``review``); raises
    InvalidEvent otherwise. The stream id must match the topic's, so a client allowed
    to publish on one stream's topic cannot end another stream.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(f"{len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):  # also a number of 4300+ digits, too deep a nesting
        raise InvalidEvent("not JSON") from None
    if not isinstance(event, dict):
        raise InvalidEvent("not a JSON object")
    if event.get("schema") != SCHEMA:
        raise InvalidEvent(f"schema is not {SCHEMA}")
    action = event.get("action")
    if action not in ("kill", "review"):
        raise InvalidEvent("action is neither kill nor review")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        raise InvalidEvent(f"event_id must be a string of 1-{MAX_EVENT_ID_CHARS} characters")
    if not event_id.isprintable():
        raise InvalidEvent("event_id has unprintable characters")
    stream_id = event.get("stream_id")
    if not isinstance(stream_id, str) or not STREAM_ID.match(stream_id):
        raise InvalidEvent("stream_id must be 1-128 letters, digits, '.', '_' or '-'")
    if stream_id != topic_stream_id:
        raise InvalidEvent("stream_id differs from the topic's")
    if action != "kill":
        return None
    return KillOrder(event_id, stream_id, _timestamp(event.get("detected_at")))


def _timestamp(value: object) -> float | None:
    """An RFC 3339 time with its UTC offset as POSIX seconds; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None
