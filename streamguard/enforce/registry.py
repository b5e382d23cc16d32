"""Streams registered in the cluster registry (docs/cluster.md) as kill targets.

With ``[cluster]`` enabled, streams reach ``run`` through the media server's webhook
or the control topic, not only through the configuration. Their registrations carry
the URL, so their publishers can be ended too. The registry is kept in memory,
refreshed every few seconds and on a kill for an unknown stream: a kill never waits
on Redis unless Redis is needed to find its stream.
"""

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError

from streamguard.enforce.targets import ConfigResolver, Target, target_of_url
from streamguard.infra.redis import RedisSettings, connect, describe
from streamguard.infra.registry import Registry
from streamguard.lifecycle import Link

log = logging.getLogger("streamguard.enforce")
REFRESH_S = 2.0


class RegistryResolver:
    """The configured streams first, then the registered ones. A `Service` keeping the
    copy of the registry fresh."""

    def __init__(self, configured: ConfigResolver, redis: RedisSettings) -> None:
        self.configured = configured
        self._settings = redis
        self._redis = connect(redis)
        self._registry = Registry(self._redis, redis.prefix)
        self._registered: dict[str, Target | None] = {}
        self.link = Link(log)
        self._stop = asyncio.Event()

    @property
    def unmapped(self) -> list[str]:
        return self.configured.unmapped

    def __len__(self) -> int:
        return len(self.configured)

    def resolve(self, stream_id: str) -> Target | None:
        return self.configured.resolve(stream_id) or self._registered.get(stream_id)

    async def refresh(self) -> None:
        """Read the registry again; on failure keep the last copy and say so once."""
        try:
            streams = await self._registry.streams()
        except RedisError as exc:
            error = describe(exc, self._settings.url)
            self.link.down(error, "stream registry unavailable (%s); using the last copy", error)
            return
        back = "stream registry is back: %d streams registered" if self.link.last_error else ""
        self.link.up(back, len(streams))
        self._registered = {
            stream_id: target_of_url(str(registration.get("url", "")))
            for stream_id, registration in streams.items()
        }

    def status(self) -> dict[str, Any]:
        return {"connected": self.link.connected, "error": self.link.last_error}

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Refresh every few seconds until ``stop``."""
        try:
            while not self._stop.is_set():
                await self.refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), REFRESH_S)
        finally:
            await self._redis.aclose()
