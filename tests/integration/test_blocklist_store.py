"""The Redis store and a worker's sync against a real redis-server."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.store import NO_STORE, BlocklistStore
from streamguard.blocklist.sync import BlocklistSync
from streamguard.infra.redis import RedisSettings, RedisSetupError, connect

pytestmark = pytest.mark.integration


def entry(number: int, algo: str = "pdq", label: str = "", category: str = "test") -> Entry:
    size = 32 if algo == "pdq" else 8
    return Entry(algo, os.urandom(size), f"e{number}", "stand-ins", category, label)


def run(coroutine: Awaitable) -> object:
    return asyncio.run(coroutine)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(sync: BlocklistSync) -> AsyncIterator[BlocklistSync]:
    """``sync`` running in a task; stopped when the block ends, however it ends."""
    task = asyncio.create_task(sync.run())
    try:
        yield sync
    finally:
        sync.stop()
        await asyncio.wait_for(task, 5)


def store_for(url: str) -> BlocklistStore:
    return BlocklistStore(connect(RedisSettings(url=url)), max_changes=1000)


def matches(sync: BlocklistSync, item: Entry) -> bool:
    return any(hit.entry.key == item.key for hit in sync.blocklist.search(item.algo, item.digest))


def test_import_is_idempotent_and_counted(redis):
    items = [entry(i) for i in range(5)] + [entry(5, "phash", category="csam")]

    async def scenario() -> None:
        store = store_for(redis.url)
        assert await store.position() == NO_STORE
        assert await store.write(items, "first.csv", now=1000.0) == (6, 0)
        first = await store.position()
        assert first.version == 1
        assert await store.write(items, "first.csv", now=2000.0) == (0, 0)
        assert await store.position() == first  # nothing changed, nothing logged
        relabelled = [*items[:-1], replace(items[-1], label="new")]
        assert await store.write(relabelled, "first.csv", now=3000.0) == (0, 1)
        counts = await store.counts()
        assert counts == {
            "algo": {"pdq": 5, "phash": 1},
            "list": {"stand-ins": 6},
            "category": {"test": 5, "csam": 1},
        }
        stored = {item.entry.key: item async for item in store.export()}
        assert stored[items[-1].key].entry.label == "new"
        assert stored[items[-1].key].added_at == 1000.0  # first added, not last written
        assert {key: s.entry.digest for key, s in stored.items()} == {
            item.key: item.digest for item in items
        }
        assert await store.remove([items[0].key, ("stand-ins", "absent")]) == 1
        assert (await store.counts())["algo"] == {"pdq": 4, "phash": 1}

    run(scenario())


def test_worker_follows_adds_and_removes(redis):
    loaded, added = [entry(i) for i in range(50)], entry(100)

    async def scenario() -> None:
        store = store_for(redis.url)
        await store.write(loaded, "base.csv", now=time.time())
        async with running(BlocklistSync(RedisSettings(url=redis.url))) as sync:
            await asyncio.wait_for(sync.loaded.wait(), 10)
            assert len(sync.blocklist) == 50 and matches(sync, loaded[7])
            assert not matches(sync, added)
            await store.write([added], "cli", now=time.time())
            await until(lambda: matches(sync, added), 3)
            await store.remove([loaded[7].key])
            await until(lambda: not matches(sync, loaded[7]), 3)
            assert sync.status()["stale_s"] < 2 and sync.reloads == 0

    run(scenario())


def test_trimmed_log_forces_full_reload(redis):
    base, later = entry(1), [entry(i) for i in range(10, 13)]

    async def scenario() -> None:
        store = store_for(redis.url)
        await store.write([base], "base.csv", now=time.time())
        async with running(BlocklistSync(RedisSettings(url=redis.url))) as sync:
            await asyncio.wait_for(sync.loaded.wait(), 10)
        # the worker is away ...
        for item in later:  # ... while three changes are made and trimmed away
            await store.write([item], "cli", now=time.time())
        client = aioredis.Redis.from_url(redis.url)
        await client.xtrim("streamguard:{blocklist}:changes", maxlen=1, approximate=False)
        await client.aclose()
        async with running(_resumed(sync)) as sync:
            await until(lambda: sync.reloads == 1, 5)
            assert all(matches(sync, item) for item in [base, *later])

    run(scenario())


def _resumed(sync: BlocklistSync) -> BlocklistSync:
    """The same worker state, as after a long pause (the loop's executor was shut down)."""
    resumed = BlocklistSync(sync.settings)
    resumed.blocklist, resumed._position = sync.blocklist, sync._position
    resumed.loaded.set()
    resumed.reloads = sync.reloads
    return resumed


def test_redis_restart_keeps_matching_and_resumes(redis):
    base, during = [entry(i) for i in range(20)], entry(99)

    async def scenario() -> None:
        await store_for(redis.url).write(base, "base.csv", now=time.time())
        async with running(BlocklistSync(RedisSettings(url=redis.url, timeout_s=1.0))) as sync:
            await asyncio.wait_for(sync.loaded.wait(), 10)
            redis.kill()
            await until(lambda: not sync.link.connected, 5)
            assert matches(sync, base[3])  # detection goes on with the last index
            await asyncio.sleep(1.5)
            assert sync.stale_s > 1.0 and "127.0.0.1" in sync.status()["error"]
            await asyncio.to_thread(redis.start)
            await store_for(redis.url).write([during], "cli", now=time.time())
            await until(lambda: matches(sync, during), 20)
            assert sync.link.connected and sync.reloads == 0  # resumed from its position
            assert matches(sync, base[3])

    run(scenario())


def test_unreachable_at_start_retries_then_loads(redis):
    item = entry(1)

    async def scenario() -> None:
        await store_for(redis.url).write([item], "base.csv", now=time.time())
        redis.kill()
        async with running(BlocklistSync(RedisSettings(url=redis.url, timeout_s=1.0))) as sync:
            await until(lambda: bool(sync.link.last_error), 5)
            assert not sync.loaded.is_set()
            await asyncio.to_thread(redis.start)
            await asyncio.wait_for(sync.loaded.wait(), 20)
            assert matches(sync, item)

    run(scenario())


def test_emptied_redis_does_not_empty_the_worker(redis):
    item = entry(1)

    async def scenario() -> None:
        await store_for(redis.url).write([item], "base.csv", now=time.time())
        async with running(BlocklistSync(RedisSettings(url=redis.url))) as sync:
            await asyncio.wait_for(sync.loaded.wait(), 10)
            client = aioredis.Redis.from_url(redis.url)
            await client.flushall()
            await client.aclose()
            await until(lambda: "gone" in sync.link.last_error, 5)
            assert matches(sync, item) and not sync.link.connected
            fresh = entry(2)
            await store_for(redis.url).write([fresh], "again.csv", now=time.time())
            await until(lambda: matches(sync, fresh), 20)
            assert not matches(sync, item)  # the new store is the truth once it exists

    run(scenario())


def test_wrong_password_is_a_clear_error(tmp_path):
    from ..support.redis import redis_server

    async def scenario(url: str) -> str:
        store = store_for(url)
        with contextlib.suppress(Exception):
            await store.position()
        try:
            await store.position()
        except Exception as exc:
            from streamguard.infra.redis import describe

            return describe(exc, url)
        return ""

    with redis_server(tmp_path / "redis", password="right-secret") as server:
        wrong = server.url.replace("right-secret", "wrong-secret")
        message = run(scenario(wrong))
        assert "authentication failed" in message
        assert "wrong-secret" not in message and "right-secret" not in message
        missing = server.url.replace(":right-secret@", "")
        assert "requires a password" in run(scenario(missing))


def test_setup_error_names_unreadable_password_file(tmp_path):
    with pytest.raises(RedisSetupError, match="cannot read password"):
        connect(RedisSettings(url="redis://127.0.0.1:1/0", password_file=tmp_path / "absent"))


def test_tls_with_a_private_ca_and_a_client_certificate(tmp_path):
    from ..support.certs import make_certificates
    from ..support.redis import redis_server

    certs = make_certificates(tmp_path / "certs")
    item = entry(1)

    async def scenario(settings: RedisSettings) -> int:
        store = BlocklistStore(connect(settings))
        await store.write([item], "tls.csv", now=time.time())
        counts = await store.counts()
        await store.client.aclose()
        return counts["algo"]["pdq"]

    with redis_server(tmp_path / "redis", tls=certs) as server:
        assert server.url.startswith("rediss://")
        settings = RedisSettings(url=server.url, ca_file=certs.ca, timeout_s=2)
        client_cert = replace(settings, cert_file=certs.client_cert, key_file=certs.client_key)
        assert run(scenario(client_cert)) == 1
        with pytest.raises(redis.exceptions.ConnectionError):
            run(scenario(settings))  # Redis asks for a client certificate by default


def test_video_frames_keep_their_video_and_time(redis):
    """Frames of a known video reach a worker with their video and time, by a full load and
    through the change log, beside entries that are pictures; export gives all fields."""
    frame = replace(entry(1), video="v-7", ts=12.5, quality=88)
    picture, later = entry(2), replace(entry(3), video="v-7", ts=13.5)

    def found(sync: BlocklistSync, item: Entry) -> tuple[str, float | None]:
        (hit,) = sync.blocklist.search(item.algo, item.digest)
        return hit.entry.video, hit.entry.ts

    async def scenario() -> None:
        store = store_for(redis.url)
        await store.write([frame, picture], "vpdq", now=time.time())
        async with running(BlocklistSync(RedisSettings(url=redis.url))) as sync:
            await asyncio.wait_for(sync.loaded.wait(), 10)
            assert found(sync, frame) == ("v-7", 12.5) and found(sync, picture) == ("", None)
            await store.write([later], "cli", now=time.time())
            await until(lambda: matches(sync, later), 3)
            assert found(sync, later) == ("v-7", 13.5)
        exported = {stored.entry.key: stored async for stored in store.export()}
        assert exported[frame.key].entry == frame and exported[frame.key].source == "vpdq"
        assert exported[picture.key].entry == picture

    run(scenario())
