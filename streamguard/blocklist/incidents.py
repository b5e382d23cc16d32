"""Incidents: a stream's recent frame hashes turned into a list of the shared blocklist
(docs/incidents.md).

An incident's entries are ordinary entries of the Redis store, in the list
``incident-<id>``, each a frame of the video ``incident-<id>`` (``ts`` seconds after the
first kept frame, its PDQ quality), so every worker's sync picks them up as any change.
Its record sits next to the store, under the same hash tag::

    PREFIX{blocklist}:incidents  HASH  id -> JSON (Incident.to_json)

Workers read the records to learn each open incident's action (``actions``): matches
of its list are decided under it (detect/policy.py). Closing removes the entries, so
workers stop matching them, and keeps the record, marked closed.
"""

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

import redis.asyncio as aioredis

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.store import BlocklistStore
from streamguard.config.policy import RuleAction
from streamguard.errors import StreamguardError
from streamguard.hashing.vpdq_signal import VpdqFrame, signal_line
from streamguard.infra.redis import DEFAULT_PREFIX

LIST_PREFIX = "incident-"
DEFAULT_CATEGORY = "incident"
SOURCE = "incident"
State = Literal["open", "closed"]


class IncidentError(StreamguardError):
    """An incident that cannot be found or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class IncidentFrame:
    """One kept frame of the incident stream: its PDQ, quality and stream time."""

    digest: bytes
    quality: int
    pts_s: float


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    stream: str
    category: str
    action: RuleAction
    label: str
    seconds: float  # of the stream's recent frames asked for
    opened_at: float
    entries: int = 0
    state: State = "open"
    closed_at: float | None = None

    @property
    def list(self) -> str:
        """The blocklist list (and video id) of its entries."""
        return f"{LIST_PREFIX}{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {"list": self.list, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Incident":
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in names})


def new_id(now: float) -> str:
    """Sortable by opening time, unique by its random tail: ``20261207-153000-9f2c``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{secrets.token_hex(2)}"


def entry_ids(incident: Incident) -> list[str]:
    """The ids of its entries: numbered, so closing needs no scan of the store."""
    return [f"f{number:05d}" for number in range(incident.entries)]


def incident_entries(incident: Incident, frames: Sequence[IncidentFrame]) -> list[Entry]:
    """Its frames as entries of its list, ``ts`` relative to the first frame."""
    if not frames:
        return []
    first = frames[0].pts_s
    ids = entry_ids(replace(incident, entries=len(frames)))
    return [
        Entry(
            algo="pdq",
            digest=frame.digest,
            id=entry_id,
            list=incident.list,
            category=incident.category,
            label=incident.label,
            video=incident.list,
            ts=round(max(frame.pts_s - first, 0.0), 3),
            quality=frame.quality,
        )
        for entry_id, frame in zip(ids, frames, strict=True)
    ]


def vpdq_signal(entries: Sequence[Entry]) -> str:
    """The entries as ThreatExchange's vPDQ signal line: ``vpdq ["<hex>,<quality>,<ts>", …]``."""
    return signal_line([VpdqFrame(e.digest, e.quality or 0, e.ts or 0.0) for e in entries])


class IncidentBook:
    """The incident records in Redis, next to the blocklist store."""

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._key = f"{prefix}{{blocklist}}:incidents"

    async def put(self, incident: Incident) -> None:
        await self.client.hset(self._key, incident.id, json.dumps(incident.to_json()))

    async def get(self, incident_id: str) -> Incident:
        """Raises IncidentError if there is no such incident."""
        raw = await self.client.hget(self._key, incident_id)
        if raw is None:
            raise IncidentError(f"no incident '{incident_id}'")
        return Incident.from_json(json.loads(raw))

    async def all(self) -> list[Incident]:
        """Every incident, oldest first."""
        rows = cast(dict[bytes, bytes], await self.client.hgetall(self._key))
        incidents = [Incident.from_json(json.loads(value)) for value in rows.values()]
        return sorted(incidents, key=lambda incident: (incident.opened_at, incident.id))

    async def actions(self) -> dict[str, RuleAction]:
        """The action of each open incident, by its list."""
        return {i.list: i.action for i in await self.all() if i.state == "open"}

    async def close(self, incident_id: str, now: float) -> Incident:
        """Remove its entries from the store (workers stop matching them within a
        second) and mark it closed; closing a closed incident changes nothing."""
        incident = await self.get(incident_id)
        if incident.state == "closed":
            return incident
        store = BlocklistStore(self.client, self.prefix)
        await store.remove([(incident.list, entry_id) for entry_id in entry_ids(incident)])
        closed = replace(incident, state="closed", closed_at=round(now, 3))
        await self.put(closed)
        return closed

    async def entries(self, incident: Incident) -> list[Entry]:
        """Its entries as the store holds them (none once closed)."""
        store = BlocklistStore(self.client, self.prefix)
        stored = await store.read([(incident.list, entry_id) for entry_id in entry_ids(incident)])
        return [found.entry for found in stored]
