"""The stream registry in Redis: which streams ``run`` processes share out (docs/cluster.md).

The keys are the cluster's (runtime/cluster.py leases them); registering and removing
streams is used by the control plane, ``streamguard streams`` and enforce, which reads
the registered URLs to find the publishers it ends.
"""

import json
import time
from typing import Any, Protocol, cast

from redis.asyncio import Redis

# KEYS: streams leases owners; ARGV: id, registration JSON. A new stream is free
# (score 0). A new URL frees the lease, so the stream is watched afresh from it.
_REGISTER = """
local known = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[1])
if known == false then return 'added' end
if cjson.decode(known)['url'] == cjson.decode(ARGV[2])['url'] then return 'unchanged' end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 'updated'
"""

# KEYS: streams leases owners broadcasts; ARGV: id
_UNREGISTER = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
"""


class Registrable(Protocol):
    """A stream as registered: its id, URL and sampling mode (None: the default)."""

    @property
    def id(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def sample(self) -> object | None: ...


class Keys:
    def __init__(self, prefix: str) -> None:
        tag = f"{prefix}{{cluster}}:"
        self.streams, self.leases, self.owners = tag + "streams", tag + "leases", tag + "owners"
        self.fence, self.workers = tag + "fence", tag + "workers"
        self.broadcasts = tag + "broadcasts"


class Registry:
    """The registered streams: what every member shares out."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._keys = Keys(prefix)
        self._register = redis.register_script(_REGISTER)
        self._unregister = redis.register_script(_UNREGISTER)

    async def register(self, stream: Registrable, source: str) -> str:
        """Add or update ``stream``: 'added', 'updated' (new URL) or 'unchanged'."""
        registration = {
            "url": stream.url,
            "sample": "" if stream.sample is None else str(stream.sample),
            "source": source,
            "at": round(time.time(), 3),
        }
        keys = self._keys
        outcome: bytes = await self._register(
            keys=[keys.streams, keys.leases, keys.owners],
            args=[stream.id, json.dumps(registration)],
        )
        return outcome.decode()

    async def unregister(self, stream_id: str) -> bool:
        """Remove a stream; False if it was not registered. Its holder stops at its next beat."""
        keys = self._keys
        return bool(
            await self._unregister(
                keys=[keys.streams, keys.leases, keys.owners, keys.broadcasts], args=[stream_id]
            )
        )

    async def streams(self) -> dict[str, dict[str, Any]]:
        """Every registration, by stream id (for tests and operators)."""
        rows = cast(dict[bytes, bytes], await self._redis.hgetall(self._keys.streams))
        return {key.decode(): json.loads(value) for key, value in rows.items()}
