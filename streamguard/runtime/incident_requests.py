"""Asking the run process that watches a stream to open an incident on it, through Redis.

Only the worker watching a stream holds its recent hashes, and ``incident open`` (the
CLI, or the MQTT control topic) does not know which process that is. So the request is
published on one Redis channel every run process with Redis listens to
(runtime/incident_desk.py); each answers on the request's own reply list: ``opened``
(the incident's id), ``not_watching``, ``empty`` (no matchable frame kept yet) or
``failed``. PUBLISH tells how many processes listen, so the asker knows when every one
has said ``not_watching`` and need not wait out its timeout.

    PREFIX{blocklist}:incident-requests        channel  JSON OpenRequest
    PREFIX{blocklist}:incident-reply:REQUEST   LIST     JSON Answer (expires after a minute)
"""

import json
import math
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import redis.asyncio as aioredis

from streamguard.blocklist.incidents import DEFAULT_CATEGORY, IncidentError
from streamguard.config import STREAM_ID
from streamguard.config.policy import ACTIONS, RuleAction

DEFAULT_SECONDS = 60.0
ANSWER_TIMEOUT_S = 10.0
REPLY_TTL_S = 60
MAX_LABEL = 200
Outcome = Literal["opened", "not_watching", "empty", "failed"]


def channel(prefix: str) -> str:
    return f"{prefix}{{blocklist}}:incident-requests"


def reply_key(prefix: str, request: str) -> str:
    return f"{prefix}{{blocklist}}:incident-reply:{request}"


@dataclass(frozen=True, slots=True)
class OpenRequest:
    stream: str
    seconds: float = DEFAULT_SECONDS
    category: str = DEFAULT_CATEGORY
    action: RuleAction = "kill"
    label: str = ""
    source: str = "cli"  # who asked: cli | mqtt
    request: str = field(default_factory=lambda: secrets.token_hex(8))  # its reply list

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def open_request(data: Any, *, source: str, request: str = "") -> OpenRequest:
    """A checked request from JSON-like ``data`` (stream, seconds, category, action,
    label); ValueError says what is wrong, never quoting more than the stream id."""
    if not isinstance(data, dict):
        raise ValueError("an incident request must be a JSON object")
    stream = data.get("stream")
    if not isinstance(stream, str) or not STREAM_ID.match(stream):
        raise ValueError("'stream' must be a stream id (1-128 letters, digits, '.', '_', '-')")
    seconds = data.get("seconds", DEFAULT_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("'seconds' must be a number")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError("'seconds' must be more than 0")
    category = data.get("category", DEFAULT_CATEGORY)
    if not isinstance(category, str) or not STREAM_ID.match(category):
        raise ValueError("'category' must be 1-128 letters, digits, '.', '_' or '-'")
    action = data.get("action", "kill")
    if action not in ACTIONS:
        raise ValueError(f"'action' must be one of: {', '.join(ACTIONS)}")
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > MAX_LABEL or not label.isprintable():
        raise ValueError(f"'label' must be printable text of at most {MAX_LABEL} characters")
    request = request or secrets.token_hex(8)
    return OpenRequest(stream, float(seconds), category.lower(), action, label, source, request)


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    incident: str = ""
    entries: int = 0
    detail: str = ""  # why not, for failed

    def to_json(self) -> str:
        return json.dumps(asdict(self))


async def ask_to_open(
    client: aioredis.Redis,
    prefix: str,
    request: OpenRequest,
    timeout_s: float = ANSWER_TIMEOUT_S,
    poll_s: float = 0.5,
) -> Answer:
    """The answer of the process watching the stream: ``opened`` (with the incident id);
    raises IncidentError with one line otherwise. ``poll_s``: longest blocking pop, below
    the client's socket timeout."""
    listening = int(await client.publish(channel(prefix), request.to_json()))
    if listening == 0:
        raise IncidentError(
            "no streamguard run process listens on this Redis (is run started with --redis?)"
        )
    deadline = time.monotonic() + timeout_s
    key = reply_key(prefix, request.request)
    not_watching = 0
    while not_watching < listening:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            raise IncidentError(
                f"stream '{request.stream}': no answer from its worker within {timeout_s:g} s"
            )
        popped = await client.blpop([key], timeout=min(left_s, poll_s))
        if popped is None:
            continue
        answer = Answer(**json.loads(cast(list[bytes], popped)[1]))
        if answer.outcome == "opened":
            return answer
        if answer.outcome == "empty":
            raise IncidentError(
                f"stream '{request.stream}': no matchable frame hashes kept yet "
                "(just started, or only flat or low-quality pictures)"
            )
        if answer.outcome == "failed":
            raise IncidentError(f"stream '{request.stream}': {answer.detail}")
        not_watching += 1
    raise IncidentError(f"no worker watches stream '{request.stream}'")


async def answer(client: aioredis.Redis, prefix: str, request: str, reply: Answer) -> None:
    """Push ``reply`` onto the request's reply list (kept a minute for a slow asker)."""
    key = reply_key(prefix, request)
    async with client.pipeline(transaction=True) as pipe:
        pipe.rpush(key, reply.to_json())
        pipe.expire(key, REPLY_TTL_S)
        await pipe.execute()
