"""Share the registered streams between every ``streamguard run`` process through Redis.

Each stream is leased by one worker process at a time. All keys share one hash tag,
so they live on one Redis Cluster node and every step is one atomic script:

    PREFIX{cluster}:streams   hash  stream id -> registration (JSON: url, sample, source, at)
    PREFIX{cluster}:leases    zset  stream id -> lease expiry, ms of Redis' clock (0: free)
    PREFIX{cluster}:owners    hash  stream id -> "TOKEN WORKER_ID" of the holder
    PREFIX{cluster}:fence     int   the last fencing token handed out
    PREFIX{cluster}:workers   zset  worker id -> heartbeat expiry (ms)
    PREFIX{cluster}:broadcasts hash stream id -> its recent broadcasts' timeline starts
                                     (ms, space-separated: runtime/broadcast.py)

Every ``lease_ttl_s / 4`` a member runs one heartbeat script: renew its own leases,
learn which it lost (taken over, or the stream was removed), give back what exceeds
its fair share (registered streams / live workers, so load spreads when a worker
joins), and claim free or expired leases up to that share and its capacity. Redis'
own clock times the leases, so hosts need not agree on the time. A crashed worker's
streams are claimed by the others within ``lease_ttl_s`` + one heartbeat; a worker
that stops (SIGTERM) releases its leases first, and they are claimed at once.

Each claim gets a new fencing token. Before a decision is published for a stream
whose lease has not been confirmed within its TTL (a paused or partitioned process),
the member asks Redis whether the token still holds; only a lease known to be taken
over stops the event. An unreachable Redis does not: a duplicate event (same
deterministic id) is harmless, a lost kill is not.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from streamguard.config import ClusterSettings, ConfigError, StreamConfig, parse_stream
from streamguard.infra.redis import RedisSettings, connect, describe
from streamguard.infra.registry import Keys, Registry
from streamguard.lifecycle import Link
from streamguard.observability import metrics
from streamguard.runtime.broadcast import Broadcasts

log = logging.getLogger("streamguard.cluster")

# KEYS: streams leases owners fence workers
# ARGV: worker, ttl_ms, capacity, held (JSON [[id, token], ...], newest claim last)
_HEARTBEAT = """
local streams, leases, owners, fence, workers = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local worker, ttl, capacity = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local held = cjson.decode(ARGV[4])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', workers, now + ttl, worker)
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now)
local kept, lost = {}, {}
for _, lease in ipairs(held) do
  local id, token = lease[1], lease[2]
  if redis.call('HEXISTS', streams, id) == 0 then
    table.insert(lost, {id, 'removed'})
  elseif redis.call('HGET', owners, id) ~= token .. ' ' .. worker then
    table.insert(lost, {id, 'taken'})
  else
    redis.call('ZADD', leases, now + ttl, id)
    table.insert(kept, id)
  end
end
local live = redis.call('ZCARD', workers)
local total = redis.call('HLEN', streams)
local share = math.min(capacity, math.ceil(total / math.max(live, 1)))
local released = {}
while #kept > share do
  local id = table.remove(kept)
  redis.call('ZADD', leases, 0, id)
  redis.call('HDEL', owners, id)
  table.insert(released, id)
end
local claimed = {}
if #kept < share then
  local free = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, share - #kept)
  for _, id in ipairs(free) do
    local token = redis.call('INCR', fence)
    redis.call('ZADD', leases, now + ttl, id)
    redis.call('HSET', owners, id, token .. ' ' .. worker)
    table.insert(claimed, {id, tostring(token), redis.call('HGET', streams, id)})
  end
end
local unleased = redis.call('ZCOUNT', leases, '-inf', now)
return cjson.encode({lost = lost, released = released, claimed = claimed,
                     live = live, total = total, unleased = unleased})
"""

# KEYS: leases owners workers; ARGV: worker, [id, token]... The worker leaves too, so
# the others' fair share covers its streams at once.
_RELEASE = """
redis.call('ZREM', KEYS[3], ARGV[1])
local released = 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', KEYS[2], id) == token .. ' ' .. ARGV[1] then
    redis.call('ZADD', KEYS[1], 0, id)
    redis.call('HDEL', KEYS[2], id)
    released = released + 1
  end
end
return released
"""


@dataclass(frozen=True, slots=True)
class Lease:
    stream_id: str
    token: str
    registration: bytes  # as stored: a changed URL shows as a different registration


def stream_of(lease: Lease) -> StreamConfig:
    """The stream a lease is for, as registered (validated again: Redis is shared)."""
    registration = json.loads(lease.registration)
    return parse_stream(
        "registration",
        lease.stream_id,
        registration.get("url"),
        registration.get("sample"),
    )


Start = Callable[[StreamConfig, Lease], None]
Stop = Callable[[str, str], None]  # stream id, reason: 'taken', 'removed', 'rebalance', ...


class ClusterMember:
    """One worker process's share of the registered streams."""

    def __init__(
        self,
        redis: RedisSettings,
        settings: ClusterSettings,
        worker_id: str,
        start: Start,
        stop: Stop,
    ) -> None:
        self.redis_settings = redis
        self.settings = settings
        self.worker_id = worker_id
        self.leases: dict[str, Lease] = {}  # in claim order
        self._taken: set[str] = set()  # streams another worker took over from this one
        self.link = Link(log)
        self.live_workers = 0
        self.registered = 0
        self._start, self._stop_stream = start, stop
        self._confirmed_at = 0.0  # monotonic time of the last successful heartbeat
        self._keys = Keys(redis.prefix)
        self._redis = connect(redis)
        self.registry = Registry(self._redis, redis.prefix)
        self.broadcasts = Broadcasts(self._redis, self._keys.broadcasts)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._release = self._redis.register_script(_RELEASE)
        self._stop = asyncio.Event()

    @property
    def interval_s(self) -> float:
        return self.settings.lease_ttl_s / 4

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.link.connected,
            "error": self.link.last_error,
            "leases": len(self.leases),
        }

    def stop(self) -> None:
        """Make ``run`` release every lease and return."""
        self._stop.set()

    async def run(self) -> None:
        """Beat until stopped, then hand every stream back at once."""
        try:
            while not self._stop.is_set():
                await self.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
        finally:
            await self._drain()
            await self._redis.aclose()

    async def beat(self) -> None:
        """One heartbeat: renew, give back, claim; start and stop streams to match."""
        keys = self._keys
        held = [[lease.stream_id, lease.token] for lease in self.leases.values()]
        try:
            reply = await self._heartbeat(
                keys=[keys.streams, keys.leases, keys.owners, keys.fence, keys.workers],
                args=[
                    self.worker_id,
                    int(self.settings.lease_ttl_s * 1000),
                    self.settings.capacity,
                    json.dumps(held),
                ],
            )
        except RedisError as exc:
            metrics.CLUSTER_HEARTBEAT_FAILURES.inc()
            error = describe(exc, self.redis_settings.url)
            self.link.down(
                error,
                "cluster: Redis unavailable (%s); keeping the %d streams held",
                error,
                len(self.leases),
            )
            return
        self._confirmed_at = time.monotonic()
        self.link.up("cluster: heartbeat as %s, %d streams held", self.worker_id, len(self.leases))
        result = json.loads(reply)
        self.live_workers, self.registered = result["live"], result["total"]
        metrics.CLUSTER_UNLEASED.set(result["unleased"])
        for stream_id, reason in result["lost"]:
            self._drop(stream_id, reason)
        for stream_id in result["released"]:
            self._drop(stream_id, "rebalance")
        for stream_id, token, registration in result["claimed"]:
            self._claim(Lease(stream_id, token, registration.encode()))

    def _claim(self, lease: Lease) -> None:
        try:
            stream = stream_of(lease)
        except (ConfigError, ValueError) as exc:  # a bad registration must not stop the rest
            log.error("cluster: stream '%s' not watched: %s", lease.stream_id, exc)
            metrics.CLUSTER_RELEASES.labels("invalid").inc()
            return
        self.leases[lease.stream_id] = lease
        self._taken.discard(lease.stream_id)
        metrics.CLUSTER_CLAIMS.inc()
        log.info("cluster: claimed stream '%s' (lease %s)", lease.stream_id, lease.token)
        self._start(stream, lease)

    def _drop(self, stream_id: str, reason: str) -> None:
        if self.leases.pop(stream_id, None) is None:
            return
        if reason == "taken":
            self._taken.add(stream_id)
        metrics.CLUSTER_RELEASES.labels(reason).inc()
        level = logging.WARNING if reason == "taken" else logging.INFO
        log.log(level, "cluster: stream '%s' no longer held here (%s)", stream_id, reason)
        self._stop_stream(stream_id, reason)

    async def still_holds(self, stream_id: str) -> bool:
        """The fencing check before publishing a decision for ``stream_id``.

        A lease confirmed within its TTL holds, and so does one this process gave back
        itself (it keeps watching while the next holder starts). Otherwise Redis is
        asked whether the token is still the owner's; only a lease known to be taken
        over fails.
        """
        if stream_id in self._taken:
            return False
        lease = self.leases.get(stream_id)
        if lease is None:
            return True
        if time.monotonic() - self._confirmed_at < self.settings.lease_ttl_s:
            return True
        try:
            owner = await asyncio.wait_for(
                self._redis.hget(self._keys.owners, stream_id), self.interval_s
            )
        except (RedisError, TimeoutError):
            return True  # unknown: publish; a duplicate has the same event id
        return owner == f"{lease.token} {self.worker_id}".encode()

    async def _drain(self) -> None:
        """Give every lease back so other workers take the streams over at once."""
        args = [self.worker_id]
        for lease in self.leases.values():
            args += [lease.stream_id, lease.token]
        try:
            released = await self._release(
                keys=[self._keys.leases, self._keys.owners, self._keys.workers], args=args
            )
        except RedisError as exc:
            log.warning(
                "cluster: could not release %d leases (%s); they expire in %.0f s",
                len(self.leases),
                describe(exc, self.redis_settings.url),
                self.settings.lease_ttl_s,
            )
            return
        metrics.CLUSTER_RELEASES.labels("drain").inc(released)
        log.info("cluster: released %d streams for other workers", released)
        self.leases.clear()
