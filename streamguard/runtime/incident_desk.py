"""Where a run process answers incident requests (runtime/incident_requests.py).

For a stream this process watches (and, in a cluster, holds the lease of): its last
``seconds`` of kept hashes (detect/recent.py) become a new incident's entries. The
record is written first, then the entries, so every worker's sync knows the incident's
action before it can match an entry (blocklist/sync.py); then the stream is killed
through the sink like any decision. Logged with stream and incident ids only, never
URLs or hashes; counted in ``streamguard_incidents_total``.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamguard.blocklist.incidents import (
    SOURCE,
    Incident,
    IncidentBook,
    IncidentFrame,
    incident_entries,
    new_id,
)
from streamguard.blocklist.store import BlocklistStore
from streamguard.infra.redis import RedisSettings, connect, describe
from streamguard.lifecycle import Link
from streamguard.observability import metrics
from streamguard.runtime.incident_requests import (
    Answer,
    OpenRequest,
    answer,
    channel,
    open_request,
)
from streamguard.runtime.state import Watch
from streamguard.runtime.worker import StreamWorker

log = logging.getLogger("streamguard.incidents")
Holds = Callable[[str], Awaitable[bool]]  # whether this process holds the stream's lease


class IncidentDesk:
    """A `Service`: follows the request channel until ``stop`` (within a second)."""

    def __init__(
        self, settings: RedisSettings, workers: Mapping[str, StreamWorker], holds: Holds
    ) -> None:
        self.settings = settings
        self.workers = workers
        self._holds = holds
        self.link = Link(log)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, Any]:
        return {"connected": self.link.connected, "error": self.link.last_error}

    async def run(self) -> None:
        client = connect(self.settings)
        try:
            while not self._stop.is_set():
                try:
                    await self._listen(client)
                except RedisError as exc:
                    error = describe(exc, self.settings.url)
                    self.link.down(error, "incidents: Redis unavailable (%s); retrying", error)
                await self.link.retry_after_backoff(self._stop)
        finally:
            await client.aclose()

    async def _listen(self, client: aioredis.Redis) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel(self.settings.prefix))
            self.link.up("incidents: listening for incident requests")
            while not self._stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    await self._handle(client, message["data"])

    async def _handle(self, client: aioredis.Redis, payload: bytes) -> None:
        try:
            data = json.loads(payload)
            request = open_request(data, source=str(data["source"]), request=str(data["request"]))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            metrics.INCIDENTS.labels("open", "refused").inc()
            log.warning("incidents: malformed request refused: %s", exc)
            return
        try:
            reply = await self._open(client, request)
        except RedisError as exc:
            reply = Answer("failed", detail=f"Redis failed: {describe(exc, self.settings.url)}")
        if reply.outcome != "not_watching":
            metrics.INCIDENTS.labels("open", reply.outcome).inc()
        if reply.outcome == "failed":
            log.error("incidents: stream %s: not opened: %s", request.stream, reply.detail)
        elif reply.outcome == "empty":
            log.warning("incidents: stream %s: not opened: no frame hashes kept", request.stream)
        await answer(client, self.settings.prefix, request.request, reply)

    async def _open(self, client: aioredis.Redis, request: OpenRequest) -> Answer:
        worker = self.workers.get(request.stream)
        if worker is None or worker.state.state is not Watch.WATCHING:
            return Answer("not_watching")
        if not await self._holds(request.stream):
            return Answer("not_watching")
        kept = worker.recent.last(request.seconds)
        if not kept:
            return Answer("empty")
        now = time.time()
        incident = Incident(
            id=new_id(now),
            stream=request.stream,
            category=request.category,
            action=request.action,
            label=request.label,
            seconds=request.seconds,
            opened_at=round(now, 3),
            entries=len(kept),
        )
        frames = [IncidentFrame(f.digest, f.quality, f.pts_s) for f in kept]
        prefix = self.settings.prefix
        await IncidentBook(client, prefix).put(incident)
        store = BlocklistStore(client, prefix, self.settings.max_changes)
        await store.write(incident_entries(incident, frames), SOURCE, now)
        log.warning(
            "incidents: incident %s opened on stream %s by %s: %d frames of %.1f s, "
            "category %s, action %s",
            incident.id,
            request.stream,
            request.source,
            len(kept),
            kept[-1].pts_s - kept[0].pts_s,
            incident.category,
            incident.action,
        )
        await worker.kill_for_incident(incident.id, kept[-1])
        return Answer("opened", incident.id, len(kept))
