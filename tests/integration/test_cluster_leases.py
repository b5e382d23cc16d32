"""Leases and the registry against a real Redis, without video: capacity, fencing,
removal, and the `streamguard streams` command."""

import asyncio
import json
import subprocess
import time

import pytest

from streamguard.config import ClusterSettings, StreamConfig
from streamguard.infra.redis import RedisSettings
from streamguard.runtime.cluster import ClusterMember

from ..support.redis import RedisServer
from .test_run_redis import against_redis

pytestmark = pytest.mark.integration
TTL_S = 1.0


class Member:
    """A ClusterMember with its start/stop calls recorded."""

    def __init__(self, redis: RedisServer, name: str, capacity: int) -> None:
        self.started: list[str] = []
        self.stopped: list[tuple[str, str]] = []
        self.member = ClusterMember(
            RedisSettings(url=redis.url, timeout_s=1),
            ClusterSettings(enabled=True, capacity=capacity, lease_ttl_s=TTL_S),
            name,
            lambda stream, lease: self.started.append(stream.id),
            lambda stream_id, reason: self.stopped.append((stream_id, reason)),
        )

    @property
    def held(self) -> set[str]:
        return set(self.member.leases)


def test_capacity_fencing_takeover_and_removal(redis: RedisServer):
    async def scenario() -> None:
        a, b = Member(redis, "a", capacity=2), Member(redis, "b", capacity=2)
        for n in range(3):
            await a.member.registry.register(StreamConfig(f"s{n}", f"rtmp://m/live/{n}"), "test")
        await a.member.beat()
        assert len(a.held) == 2  # its capacity; the third waits for someone
        await b.member.beat()
        assert len(b.held) == 1 and not a.held & b.held

        # a is paused past its TTL: its leases expire, and b takes one (its capacity)
        time.sleep(TTL_S + 0.2)
        await b.member.beat()
        (lost,) = a.held & b.held
        assert await a.member.still_holds(lost) is False  # fenced: no event from a
        await a.member.beat()
        assert (lost, "taken") in a.stopped and lost not in a.held

        # a stream removed from the registry stops where it is watched
        gone = sorted(b.held)[0]
        assert await a.member.registry.unregister(gone)
        await b.member.beat()
        assert (gone, "removed") in b.stopped

        # a confirmed lease holds without asking Redis
        mine = sorted(b.held)[0]
        assert await b.member.still_holds(mine) is True
        for m in (a, b):
            m.member.stop()
            await m.member.run()  # drains at once
        # given back, not taken: a decision made while handing over is still published
        assert await b.member.still_holds(mine) is True
        assert await a.member.registry.streams() != {}

    asyncio.run(scenario())


def streams_cli(redis: RedisServer, *args: str) -> subprocess.CompletedProcess:
    return against_redis(redis, "streams", *args)


def test_streams_command_registers_lists_and_removes(redis: RedisServer):
    added = streams_cli(redis, "add", "cam", "rtmp://media/live/secret-key")
    assert added.returncode == 0 and "'cam' added" in added.stderr, added.stderr
    assert "secret-key" not in added.stderr
    listed = streams_cli(redis, "list", "--json")
    (line,) = listed.stdout.splitlines()
    assert json.loads(line) | {"at": 0} == {
        "id": "cam",
        "url": "rtmp://media/live/***",
        "sample": "",  # none of its own: each run's --sample or [sampling] mode
        "source": "cli",
        "at": 0,
    }
    streams_cli(redis, "add", "cam", "rtmp://media/live/secret-key", "--sample", "keyframes")
    assert "\tkeyframes\tcli" in streams_cli(redis, "list").stdout
    refused = streams_cli(redis, "add", "local", "file:///etc/passwd")
    assert refused.returncode == 2 and "not enabled" in refused.stderr
    removed = streams_cli(redis, "remove", "cam", "ghost")
    assert removed.returncode == 0 and "'ghost' was not registered" in removed.stderr
    assert streams_cli(redis, "list").stdout == ""


def test_workers_agree_on_a_broadcast_s_name_and_tell_a_restart_apart(redis: RedisServer):
    """runtime/broadcast.py: two workers that see one broadcast with different arrival
    delays give it one name; after a restart (stream time went back) a new one, even
    when the new start is within the tolerance of the old; a removed stream's record
    goes with it."""

    async def scenario() -> None:
        a, b = Member(redis, "a", capacity=1), Member(redis, "b", capacity=1)
        await a.member.registry.register(StreamConfig("cam", "rtmp://m/live/cam"), "test")
        first = await a.member.broadcasts.agree("cam", 1_000_000, None)
        assert first == 1_000_000  # recorded
        assert await b.member.broadcasts.agree("cam", 1_000_900, None) == first  # adopted
        assert await b.member.broadcasts.agree("other", 1_000_900, None) == 1_000_900
        # a restart 1.5 s after the first start: within tolerance, but its seer left
        # the first timeline (stream time went back), so it is not that one
        second = await a.member.broadcasts.agree("cam", 1_001_500, first)
        assert second == 1_001_500
        assert await b.member.broadcasts.agree("cam", 1_001_450, first) == second
        far = await b.member.broadcasts.agree("cam", 2_000_000, None)
        assert far == 2_000_000  # beyond the tolerance of both: another broadcast
        assert await a.member.registry.unregister("cam")
        assert await a.member.broadcasts.agree("cam", 1_000_100, None) == 1_000_100

    asyncio.run(scenario())
