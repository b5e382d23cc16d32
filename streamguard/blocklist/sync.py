"""Keeps a worker's in-memory blocklist equal to the Redis store.

A full load at start, then the change log. Matching never waits on Redis: while
Redis is away the worker keeps the index it has, reports how stale it is, and
resumes from its position in the log when Redis returns (or reloads in full if
the log no longer reaches back that far).

It also keeps each open incident's action (``incident_actions``, read from the incident
records next to the store: blocklist/incidents.py), re-read before applying changes
that add entries of an incident's list, so that no such entry is matched before its
incident's action is known.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import numpy as np
from redis.exceptions import RedisError

from streamguard.blocklist.incidents import LIST_PREFIX, IncidentBook
from streamguard.blocklist.memory import Blocklist, BlocklistBuilder
from streamguard.blocklist.store import (
    NO_STORE,
    BlocklistStore,
    Change,
    ChangesMissed,
    Position,
    StoreError,
    parse_contents,
)
from streamguard.config.policy import RuleAction
from streamguard.infra.redaction import redact
from streamguard.infra.redis import RedisSettings, connect, describe
from streamguard.libc import return_freed_memory
from streamguard.lifecycle import Link

log = logging.getLogger("streamguard.blocklist")
WAIT_MS = 1000  # longest wait for a change; staleness stays below this while connected


class BlocklistSync:
    """A `Service`. ``blocklist`` is the object workers match against; a reload replaces
    its contents."""

    def __init__(
        self,
        settings: RedisSettings,
        thresholds: Mapping[str, int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.thresholds = dict(thresholds or {})
        self.blocklist = Blocklist(self.thresholds)
        self.incident_actions: dict[str, RuleAction] = {}  # updated in place: policies hold it
        self.loaded = asyncio.Event()
        self.link = Link(log)
        self.reloads = 0
        self.changes_applied = 0
        self._clock = clock
        self._synced_at: float | None = None
        self._position: Position | None = None
        # Index updates are CPU work: one thread, so the event loop keeps deciding frames.
        self._updates = ThreadPoolExecutor(1, thread_name_prefix="blocklist")
        self._stop = asyncio.Event()
        # A blocking read must return before the socket timeout turns it into an error.
        self._wait_ms = int(min(WAIT_MS, settings.timeout_s * 500))

    def stop(self) -> None:
        """Make ``run`` return within about a second.

        Preferred to cancelling the task: redis-py can lose a cancellation that lands
        inside a blocking read (redis/redis-py#2028), and the task would never end.
        """
        self._stop.set()

    @property
    def stale_s(self) -> float | None:
        """Seconds since the blocklist was last known to equal the store (None before)."""
        return None if self._synced_at is None else self._clock() - self._synced_at

    def status(self) -> dict[str, Any]:
        stale = self.stale_s
        return {
            "source": "redis",
            "url": redact(self.settings.url),
            "loaded": self.loaded.is_set(),
            "connected": self.link.connected,
            "entries": len(self.blocklist),
            "version": None if self._position is None else self._position.version,
            "stale_s": None if stale is None else round(stale, 3),
            "reloads": self.reloads,
            "error": self.link.last_error,
        }

    async def run(self) -> None:
        """Load, then follow the change log, until ``stop``."""
        client = connect(self.settings)
        store = BlocklistStore(client, self.settings.prefix, self.settings.max_changes)
        try:
            while not self._stop.is_set():
                try:
                    if self._position is None:
                        await self._load(store)
                    await self._follow(store)
                except ChangesMissed as exc:
                    log.warning("blocklist: %s; reloading in full", exc)
                    self._position = None
                    continue
                except RedisError as exc:
                    self._lost(describe(exc, self.settings.url))
                except (StoreError, OSError) as exc:
                    self._lost(str(exc))
                except Exception as exc:  # a bug must not end the sync: retry, loudly
                    log.exception("blocklist: sync failed")
                    self._lost(f"internal error ({exc.__class__.__name__})")
                await self.link.retry_after_backoff(self._stop)
        finally:
            self._updates.shutdown(wait=False, cancel_futures=True)
            await client.aclose()

    def _lost(self, error: str) -> None:
        state = "keeping the loaded entries" if self.loaded.is_set() else "not loaded yet"
        self.link.down(error, "blocklist: Redis unavailable (%s); %s; retrying", error, state)

    async def _load(self, store: BlocklistStore) -> None:
        started = time.perf_counter()
        position, fresh = await fetch(store, self.thresholds, self._updates)
        await self._learn_incidents(store)
        if position is NO_STORE and len(self.blocklist):
            raise StoreError(f"no blocklist under prefix '{self.settings.prefix}' any more")
        self.blocklist.adopt(fresh)
        self._position = position
        self._synced()
        if self.loaded.is_set():
            self.reloads += 1
        self.loaded.set()
        counts = ", ".join(f"{algo} {n}" for algo, n in self.blocklist.counts().items() if n)
        log.info(
            "blocklist: loaded %d entries (%s) from %s at version %d in %.1f s",
            len(self.blocklist),
            counts or "empty",
            redact(self.settings.url),
            position.version,
            time.perf_counter() - started,
        )

    async def _follow(self, store: BlocklistStore) -> None:
        loop = asyncio.get_running_loop()
        position = self._position
        while position is not None and not self._stop.is_set():
            changes = await store.changes(position, self._wait_ms)
            if changes:
                if any(n.startswith(LIST_PREFIX) for c in changes for n in c.entries.lists):
                    await self._learn_incidents(store)
                await loop.run_in_executor(self._updates, self._apply, changes)
                last = changes[-1]
                position = self._position = Position(position.epoch, last.version, last.record_id)
            self._synced()

    async def _learn_incidents(self, store: BlocklistStore) -> None:
        actions = await IncidentBook(store.client, self.settings.prefix).actions()
        self.incident_actions.clear()
        self.incident_actions.update(actions)

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            if len(change.dropped):
                self.blocklist.drop(change.dropped)
            if len(change.numbers):
                self.blocklist.put(change.numbers, change.entries)
            self.changes_applied += 1
        last = changes[-1]
        log.info(
            "blocklist: version %d: %d entries added or updated, %d removed",
            last.version,
            sum(len(change.numbers) for change in changes),
            sum(len(change.dropped) for change in changes),
        )

    def _synced(self) -> None:
        self.link.up("blocklist: Redis is back; in sync" if self.link.last_error else "")
        self._synced_at = self._clock()


async def fetch(
    store: BlocklistStore, thresholds: Mapping[str, int], pool: Executor
) -> tuple[Position, Blocklist]:
    """The whole store as a new blocklist, and the position it reflects.

    The position is read first: changes made during the scan are in the log after it,
    and applying them again on top of the scan is harmless (puts and drops by number).
    Parsing and indexing run on ``pool``, off the event loop.
    """
    position = await store.position()
    loop = asyncio.get_running_loop()
    builder = BlocklistBuilder(thresholds)
    parsing: asyncio.Future[None] | None = None
    async for numbers, contents in store.scan():  # the next batch is read while this one parses
        if parsing is not None:
            await parsing
        parsing = loop.run_in_executor(pool, _put_contents, builder, numbers, contents)
    if parsing is not None:
        await parsing
    blocklist = await loop.run_in_executor(pool, builder.build)
    del builder
    return_freed_memory()  # the load's temporary arrays: 1.8 GB -> 1.35 GB at 10M PDQ
    return position, blocklist


async def load_once(settings: RedisSettings, thresholds: Mapping[str, int]) -> Blocklist:
    """The blocklist as it is now, for one-off work such as ``scan --redis``.

    Raises StoreError with a one-line reason if Redis cannot be used.
    """
    client = connect(settings)
    try:
        with ThreadPoolExecutor(1) as pool:
            _, blocklist = await fetch(BlocklistStore(client, settings.prefix), thresholds, pool)
    except RedisError as exc:
        raise StoreError(describe(exc, settings.url)) from None
    finally:
        await client.aclose()
    return blocklist


def _put_contents(builder: BlocklistBuilder, numbers: np.ndarray, contents: list[bytes]) -> None:
    builder.put(numbers, parse_contents(contents))
