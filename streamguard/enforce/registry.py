"""Streams registered in the cluster registry (docs/cluster.md) as kill targets.

With ``[cluster]`` enabled, streams reach ``run`` through the media server's webhook
or the control topic, not only through the configuration. Their registrations carry
the URL, so their publishers can be ended too. The registry is kept in memory,
refreshed every few seconds and on a kill for an unknown stream: a kill never waits
on Redis unless Redis is needed to find its stream.
"""

import asyncio
import logging

from redis.exceptions import RedisError

from streamguard.blocklist.store import RedisSettings, connect, describe
from streamguard.enforce.targets import ConfigResolver, Target, target_of_url
from streamguard.runtime.cluster import Registry

log = logging.getLogger("streamguard.enforce")
REFRESH_S = 2.0


class RegistryResolver:
    """The configured streams first, then the registered ones."""

    def __init__(self, configured: ConfigResolver, redis: RedisSettings) -> None:
        self.configured = configured
        self._settings = redis
        self._redis = connect(redis)
        self._registry = Registry(self._redis, redis.prefix)
        self._registered: dict[str, Target | None] = {}
        self._error = ""

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
            if error != self._error:
                log.error("stream registry unavailable (%s); using the last copy", error)
            self._error = error
            return
        if self._error:
            log.info("stream registry is back: %d streams registered", len(streams))
        self._error = ""
        self._registered = {
            stream_id: target_of_url(str(registration.get("url", "")))
            for stream_id, registration in streams.items()
        }

    async def run(self) -> None:
        """Refresh until cancelled."""
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(REFRESH_S)
        finally:
            await self._redis.aclose()
