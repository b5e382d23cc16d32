"""``streamguard api`` as a process: its blocklist (files, or Redis followed as ``run``
follows it), the HTTP server, the gauges, and shutdown on SIGTERM or SIGINT.

Stateless: replicas behind a load balancer each follow the same Redis list, so a change
reaches every one within a second, and each keeps matching on what it has while Redis is
away (``/readyz`` stays ready once loaded; staleness is a gauge).
"""

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from streamguard import lifecycle
from streamguard.api.app import make_runner
from streamguard.api.context import ApiContext
from streamguard.api.scans import Scans
from streamguard.api.tokens import Tokens
from streamguard.blocklist.files import load_blocklist_files
from streamguard.blocklist.memory import Blocklist
from streamguard.blocklist.sync import BlocklistSync
from streamguard.config import ConfigError, Settings
from streamguard.detect.upload import UploadMatcher
from streamguard.observability import metrics

log = logging.getLogger("streamguard.api")
GAUGE_INTERVAL_S = 1.0
SYNC_STOP_TIMEOUT_S = 5.0
SHUTDOWN_GRACE_S = 5.0  # for requests in flight


def check_exposure(host: str, tokens: Tokens) -> None:
    """An API without tokens may listen on loopback only (ConfigError otherwise)."""
    if tokens:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"api: listening on {host} without tokens: give [api] token_files or "
            "--token-file, or listen on 127.0.0.1"
        )


def run(settings: Settings, tokens: Tokens) -> None:
    """Serve until SIGTERM or SIGINT."""
    asyncio.run(_serve(settings, tokens))


class ListSource:
    """The blocklist the API matches against: loaded files, or Redis followed."""

    def __init__(self, settings: Settings) -> None:
        self.sync: BlocklistSync | None = None
        if settings.redis.url:
            self.sync = BlocklistSync(settings.redis, settings.max_distance)
        self.blocklist: Blocklist = (
            self.sync.blocklist if self.sync else load_blocklist_files(settings)
        )
        self._loaded_at = time.time()

    async def wait_loaded(self) -> None:
        if self.sync is not None:
            await self.sync.loaded.wait()

    def status(self) -> dict[str, Any]:
        if self.sync is not None:
            return self.sync.status()
        return {"source": "files", "loaded": True, "entries": len(self.blocklist)}

    def built_to(self) -> int:
        """Unix time the index was last known to equal its source."""
        if self.sync is None:
            return int(self._loaded_at)
        return int(time.time() - (self.sync.stale_s or 0.0))

    def update_gauges(self) -> None:
        metrics.API_READY.set(int(bool(self.status()["loaded"])))
        for algo, count in self.blocklist.counts().items():
            metrics.BLOCKLIST_ENTRIES.labels(algo).set(count)
        if self.sync is not None:
            metrics.BLOCKLIST_STALENESS.set(self.sync.stale_s or 0.0)
            metrics.CONNECTED.labels("redis").set(int(self.sync.link.connected))


def api_context(settings: Settings, tokens: Tokens, source: ListSource) -> ApiContext:
    """What the routes read, for ``settings`` and the list ``source`` holds."""
    overrides = source.sync.incident_actions if source.sync else None
    robustness = settings.detect
    matcher = UploadMatcher(source.blocklist, settings.policy, overrides, robustness=robustness)
    threads = settings.hash_threads or os.cpu_count() or 1
    scans = Scans(matcher, settings.api, settings.sample, threads)
    return ApiContext(
        settings.api, source.blocklist, matcher, scans, tokens, source.status, source.built_to
    )


async def _serve(settings: Settings, tokens: Tokens) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    source = ListSource(settings)
    context = api_context(settings, tokens, source)
    runner = make_runner(context, SHUTDOWN_GRACE_S)
    await runner.setup()
    host, port = settings.api.listen_address
    services = []
    try:
        await _listen(runner, host, port)
        if source.sync is not None:
            services.append(lifecycle.start("blocklist sync", source.sync, SYNC_STOP_TIMEOUT_S))
        log.info(
            "API on %s:%d (%s, %d scan threads)",
            host,
            port,
            f"{len(tokens)} tokens" if tokens else "no tokens: loopback only",
            context.scans.threads,
        )
        settle = asyncio.create_task(_settle(source))
        await _tick(stop, source.update_gauges)
        settle.cancel()
    finally:
        await runner.shutdown()
        await runner.cleanup()
        await lifecycle.stop_in_order(services)
        context.scans.close()
        log.info("stopped")


async def _settle(source: ListSource) -> None:
    """Once the list is loaded, move every object alive then out of the garbage
    collector's sight: a full collection walked them all (25-30 ms with 1M entries
    loaded, measured under load by bench_api), a pause in whatever request it fell on."""
    await source.wait_loaded()
    gc.collect()
    gc.freeze()


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"api: cannot listen on {host}:{port} ({reason})") from None


async def _tick(stop: asyncio.Event, every_second: Callable[[], None]) -> None:
    while not stop.is_set():
        every_second()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), GAUGE_INTERVAL_S)
