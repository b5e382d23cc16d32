"""``streamguard run``: workers for the configured streams, the HTTP port, shutdown.

With more than one process, streams are dealt round-robin to worker processes
(spawned, each with its own event loop, blocklist and hash threads). The parent
serves HTTP, gathers each child's per-stream state once a second, and restarts
a child that dies.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from streamguard.blocklist.degenerate import degenerate_summary
from streamguard.blocklist.memory import Blocklist
from streamguard.blocklist.sync import BlocklistSync
from streamguard.config import Settings, StreamConfig, read_secret
from streamguard.events.broker import client_id_base
from streamguard.events.mqtt import MqttSink
from streamguard.events.outbox import Outbox, adopt_orphans, outbox_path
from streamguard.events.sinks import EventSink, StdoutSink
from streamguard.ingest.budget import CpuBudget
from streamguard.libc import tune_malloc
from streamguard.observability import metrics
from streamguard.observability.http import PostRoute, Response, json_response, serve
from streamguard.observability.logging import setup_logging
from streamguard.runtime.cluster import ClusterMember, Lease
from streamguard.runtime.control import ControlPlane
from streamguard.runtime.worker import StreamWorker

log = logging.getLogger("streamguard.run")
STATE_INTERVAL_S = 1.0
CHILD_STOP_TIMEOUT_S = 20.0  # a cluster member keeps watching during its handover
SYNC_STOP_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 5.0
# A stream handed to another worker is watched here until the next holder has claimed
# it (one heartbeat) and opened it (RTMP play + first keyframe: p99 2.7 s measured).
HANDOVER_OPEN_S = 3.0

Snapshots = list[dict[str, Any]]


class Watcher:
    """The streams of one process, each with its own worker, and the blocklist they share.

    Without a cluster the streams are the configured ones. With one, they are the
    streams this process holds a lease for, and they come and go as leases do.
    """

    def __init__(self, settings: Settings, number: int = 0, worker_id: str = "") -> None:
        self.settings = settings
        self.sync: BlocklistSync | None = None
        if settings.redis.url:
            self.sync = BlocklistSync(settings.redis, settings.max_distance)
            self.blocklist = self.sync.blocklist
        else:
            self.blocklist, refused = Blocklist.from_files(
                settings.blocklists,
                settings.blocklist_algo,
                settings.max_distance,
                allow_degenerate=settings.allow_degenerate,
            )
            for refusal in refused:
                log.warning("blocklist: %s", refusal)
            metrics.BLOCKLIST_DEGENERATE.labels("refused").set(len(refused))
            counts = ", ".join(f"{a} {n}" for a, n in self.blocklist.counts().items() if n)
            loaded = sum(self.blocklist.degenerate_counts().values())
            summary = degenerate_summary(len(refused), loaded)
            log.info("blocklist: %d entries (%s)%s", len(self.blocklist), counts, summary)
        self.worker_id = worker_id or f"{socket.gethostname()}/{os.getpid()}"
        threads = settings.hash_threads or os.cpu_count() or 1
        self._hash_pool = ThreadPoolExecutor(threads, thread_name_prefix="hash")
        self._probe_budget = CpuBudget(settings.sampling.probe_cpu)
        self.mqtt: MqttSink | None = None
        self.sink: EventSink = StdoutSink()
        if settings.mqtt.url:
            outbox = Outbox(outbox_path(settings.state_dir, number), settings.outbox_max_events)
            identifier = f"{client_id_base(settings.mqtt)}-{number}"
            self.sink = self.mqtt = MqttSink(settings.mqtt, outbox, identifier)
        self.cluster: ClusterMember | None = None
        if settings.cluster.enabled:
            self.cluster = ClusterMember(
                settings.redis, settings.cluster, self.worker_id, self.start, self.retire
            )
        # Configured streams show in /streams as "starting" until the blocklist loads.
        static = () if self.cluster is not None else settings.streams
        self.workers = {stream.id: self._worker(stream) for stream in static}
        self._tasks: dict[str, asyncio.Task] = {}

    def _worker(self, stream: StreamConfig) -> StreamWorker:
        fence = None
        if self.cluster is not None:
            fence = partial(self.cluster.still_holds, stream.id)
        return StreamWorker(
            stream,
            self.settings.ingest,
            self.blocklist,
            self.sink,
            self._hash_pool,
            self.worker_id,
            self.settings.policy,
            robustness=self.settings.detect,
            fence=fence,
            sample=self.settings.sample,
            guard=self.settings.sampling,
            budget=self._probe_budget,
        )

    def start(self, stream: StreamConfig, lease: Lease | None = None) -> None:
        """Start watching ``stream`` (a lease the cluster claimed for it)."""
        if stream.id in self.workers:
            self.retire(stream.id, "replaced")
        self.workers[stream.id] = worker = self._worker(stream)
        self._tasks[stream.id] = asyncio.create_task(worker.run(), name=stream.id)

    @property
    def handover_s(self) -> float:
        """How long a stream given back to the cluster stays watched here."""
        return 0.0 if self.cluster is None else self.cluster.interval_s + HANDOVER_OPEN_S

    def retire(self, stream_id: str, reason: str) -> None:
        """Stop watching a stream this process no longer holds.

        A stream given to another worker (``rebalance``) is watched until that one has
        had time to start: briefly twice rather than not at all. Its retained status is
        cleared if it was removed; after a handover the new holder reports it, so this
        process stays quiet.
        """
        worker = self.workers.get(stream_id)
        if worker is None:
            return
        if reason == "rebalance":
            loop = asyncio.get_running_loop()
            loop.call_later(self.handover_s, self._retire, stream_id, worker, reason)
        else:
            self._retire(stream_id, worker, reason)

    def _retire(self, stream_id: str, worker: StreamWorker, reason: str) -> None:
        if self.workers.get(stream_id) is not worker:
            return  # already retired, or claimed again since
        del self.workers[stream_id]
        worker.retire(clear_status=reason == "removed")
        self._tasks.pop(stream_id).cancel()

    def snapshots(self) -> Snapshots:
        return [worker.snapshot() for worker in self.workers.values()]

    def blocklist_status(self) -> dict[str, Any]:
        if self.sync is not None:
            return self.sync.status()
        return {"source": "files", "loaded": True, "entries": len(self.blocklist)}

    def update_gauges(self) -> None:
        """Set the gauges that mirror state held elsewhere (once a second)."""
        now = time.time()
        workers = self.workers.values()
        metrics.INGEST_LAG.set(max((w.lag_s() for w in workers), default=0.0))
        metrics.KEYFRAME_AGE.set(max((w.keyframe_age_s(now) for w in workers), default=0.0))
        metrics.STREAMS_BEYOND_KEYFRAMES.set(sum(w.decoding_beyond_keyframes() for w in workers))
        for algo, count in self.blocklist.counts().items():
            metrics.BLOCKLIST_ENTRIES.labels(algo).set(count)
        loaded = sum(self.blocklist.degenerate_counts().values())
        metrics.BLOCKLIST_DEGENERATE.labels("loaded").set(loaded)
        if self.sync is not None:
            metrics.BLOCKLIST_STALENESS.set(self.sync.stale_s or 0.0)
            metrics.CONNECTED.labels("redis").set(int(self.sync.connected))
        if self.mqtt is not None:
            metrics.OUTBOX_EVENTS.set(len(self.mqtt.outbox))
            metrics.OUTBOX_OLDEST_AGE.set(self.mqtt.outbox.oldest_age_s(now))
            metrics.CONNECTED.labels("mqtt").set(int(self.mqtt.connected))
        if self.cluster is not None:
            metrics.CLUSTER_LEASES.set(len(self.cluster.leases))
            metrics.CLUSTER_CAPACITY.set(self.settings.cluster.capacity)
            metrics.CLUSTER_REGISTERED.set(self.cluster.registered)
            metrics.CLUSTER_WORKERS.set(self.cluster.live_workers)
            metrics.CONNECTED.labels("cluster").set(int(self.cluster.connected))

    @property
    def ready(self) -> bool:
        """Blocklist loaded and events can go out."""
        return self.blocklist_status()["loaded"] and self.sink.ready

    async def run(self, stop: asyncio.Event, tick: Callable[[], None] | None = None) -> None:
        """Watch until ``stop`` is set, calling ``tick`` once a second.

        With Redis, streams are opened (or leases claimed) once the blocklist has
        loaded: frames before that could not be matched against anything.
        """
        sync_task = None if self.sync is None else asyncio.create_task(self.sync.run())
        mqtt_task = None if self.mqtt is None else asyncio.create_task(self.mqtt.run())
        cluster_task: asyncio.Task | None = None
        try:
            while not stop.is_set():
                if self.blocklist_status()["loaded"] and not (self._tasks or cluster_task):
                    if self.cluster is not None:
                        log.info("joining the cluster as %s", self.worker_id)
                        cluster_task = asyncio.create_task(self.cluster.run())
                    else:
                        log.info("watching %d streams", len(self.workers))
                        self._tasks = {
                            stream_id: asyncio.create_task(worker.run(), name=stream_id)
                            for stream_id, worker in self.workers.items()
                        }
                self.update_gauges()
                if tick is not None:
                    tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATE_INTERVAL_S)
        finally:
            if self.cluster is not None and cluster_task is not None:
                self.cluster.stop()  # leases go back first: others take over at once ...
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cluster_task, SYNC_STOP_TIMEOUT_S)
                if self.workers and self.cluster.live_workers > 1:  # ... while still watched here
                    await asyncio.sleep(self.handover_s)
            for worker in self.workers.values():
                worker.stop(report=self.cluster is None)  # in a cluster, the next holder reports
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.sync is not None and sync_task is not None:
                self.sync.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sync_task, SYNC_STOP_TIMEOUT_S)
            if self.mqtt is not None and mqtt_task is not None:
                await self._drain(self.mqtt, mqtt_task)
            self._hash_pool.shutdown(wait=False, cancel_futures=True)
            log.info("stopped")

    @staticmethod
    async def _drain(mqtt: MqttSink, task: asyncio.Task) -> None:
        """Give waiting events a few seconds to go out; the outbox keeps the rest."""
        mqtt.stop()
        try:
            await asyncio.wait_for(task, DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("MQTT: %d events left in the outbox for the next start", len(mqtt.outbox))
        mqtt.close()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


def _routes(
    streams: Callable[[], Snapshots],
    ready: Callable[[], tuple[bool, Any]],
    metrics_dir: Path | None = None,
) -> dict[str, Callable[[], Response]]:
    """``ready`` returns whether the service is ready and each worker process's blocklist."""

    def readyz() -> Response:
        ok, blocklist = ready()
        return json_response({"ready": ok, "blocklist": blocklist}, 200 if ok else 503)

    return {
        "/streams": lambda: json_response(streams()),
        "/healthz": lambda: json_response({"alive": True}),
        "/readyz": readyz,
        "/metrics": lambda: Response(200, metrics.render(metrics_dir), metrics.CONTENT_TYPE),
    }


@contextlib.asynccontextmanager
async def _control_plane(settings: Settings) -> AsyncIterator[dict[str, PostRoute]]:
    """With a cluster: register the configured streams, follow the control topic, and
    give the webhook routes (none without a control secret)."""
    if not settings.cluster.enabled:
        yield {}
        return
    secret = read_secret(settings.control.secret_file, "control secret")
    plane = ControlPlane(settings, secret)
    tasks = [asyncio.create_task(plane.register_configured(settings.streams))]
    if not secret:
        log.warning("control: no control.secret_file: webhooks and the control topic are off")
    elif settings.mqtt.url:
        tasks.append(asyncio.create_task(plane.subscriber().run()))
    try:
        yield plane.webhooks() if secret else {}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plane.close()


async def _run_in_process(settings: Settings) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    watcher = Watcher(settings, worker_id=settings.worker_id)  # loads the blocklist
    routes = _routes(watcher.snapshots, lambda: (watcher.ready, [watcher.blocklist_status()]))
    async with _control_plane(settings) as webhooks:
        server = await serve(
            settings.http_host, settings.http_port, routes, webhooks, metrics.INTERNAL_ERRORS.inc
        )
        try:
            await watcher.run(stop)
        finally:
            server.close()
            await server.wait_closed()


def _child_main(number: int, settings: Settings, states: Any, log_level: int) -> None:
    """Entry point of a worker process: its streams, no HTTP; states go to the parent."""
    setup_logging(log_level, process=f"worker-{number}")
    # Exiting must not wait for unsent snapshots: the parent stops reading them at
    # shutdown, and a full pipe would otherwise hold this process forever.
    states.cancel_join_thread()

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        worker_id = settings.worker_id and f"{settings.worker_id}-{number}"
        watcher = Watcher(settings, number, worker_id)

        def report() -> None:
            states.put((number, watcher.snapshots(), watcher.ready, watcher.blocklist_status()))

        await watcher.run(stop, report)

    asyncio.run(main())


async def _run_processes(settings: Settings, count: int) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    metrics_dir = settings.state_dir / "metrics"
    metrics.use_multiprocess_dir(metrics_dir)  # before the workers start
    context = multiprocessing.get_context("spawn")
    states = context.Queue()
    if settings.cluster.enabled:  # every process claims from the registry
        parts = [settings] * count
    else:
        parts = [replace(settings, streams=settings.streams[i::count]) for i in range(count)]
    latest: dict[int, Snapshots] = {}
    readiness: dict[int, tuple[bool, dict[str, Any]]] = {}
    level = logging.getLogger().level

    def start(number: int) -> BaseProcess:
        child = context.Process(
            target=_child_main,
            args=(number, parts[number], states, level),
            name=f"streamguard-worker-{number}",
        )
        child.start()
        return child

    children = [start(number) for number in range(count)]

    def streams() -> Snapshots:
        return [state for number in sorted(latest) for state in latest[number]]

    def ready() -> tuple[bool, list[dict[str, Any]]]:
        alive = len(readiness) == count and all(child.is_alive() for child in children)
        ok = alive and all(ready for ready, _ in readiness.values())
        return ok, [readiness[number][1] for number in sorted(readiness)]

    routes = _routes(streams, ready, metrics_dir)
    async with _control_plane(settings) as webhooks:
        server = await serve(
            settings.http_host, settings.http_port, routes, webhooks, metrics.INTERNAL_ERRORS.inc
        )
        try:
            await _supervise(
                stop, children, start, states, latest, readiness, settings.worker_timeout_s
            )
        finally:
            server.close()


async def _supervise(
    stop: asyncio.Event,
    children: list[BaseProcess],
    start: Callable[[int], BaseProcess],
    states: Any,
    latest: dict[int, Snapshots],
    readiness: dict[int, tuple[bool, dict[str, Any]]],
    timeout_s: float,
) -> None:
    """Gather the children's states and restart any that dies, or that has sent none for
    ``timeout_s`` (hung: a blocked event loop, a stopped process), until ``stop``; then
    stop them all. A child still loading its blocklist has not reported yet and is
    not timed."""
    loop = asyncio.get_running_loop()
    reported: dict[int, float] = {}  # child number -> loop time of its last state
    try:
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                number, snapshot, ok, blocklist = await loop.run_in_executor(
                    None, states.get, True, 0.5
                )
                latest[number] = snapshot
                readiness[number] = (ok, blocklist)
                reported[number] = loop.time()
            for number, child in enumerate(children):
                silent_s = loop.time() - reported.get(number, loop.time())
                if stop.is_set() or (child.is_alive() and silent_s <= timeout_s):
                    continue
                if child.is_alive():
                    log.error(
                        "worker process %d sent no state for %.0f s (hung); killing it and "
                        "starting a new one",
                        number,
                        silent_s,
                    )
                    child.kill()
                    await loop.run_in_executor(None, child.join, CHILD_STOP_TIMEOUT_S)
                    reason = "hung"
                else:
                    log.error(
                        "worker process %d exited (code %s); restarting", number, child.exitcode
                    )
                    reason = "exited"
                latest.pop(number, None)
                readiness.pop(number, None)
                reported.pop(number, None)
                metrics.process_exited(child.pid)
                metrics.WORKER_RESTARTS.labels(reason).inc()
                children[number] = start(number)
    finally:
        for child in children:
            child.terminate()  # SIGTERM: each child stops its workers
        deadline = loop.time() + CHILD_STOP_TIMEOUT_S
        for child in children:
            await loop.run_in_executor(None, child.join, max(deadline - loop.time(), 0))
            if child.is_alive():
                log.error("worker process %s did not stop in time; killed", child.name)
                child.kill()


def run(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    tune_malloc()  # before any thread, and inherited by the worker processes
    count = settings.processes or os.cpu_count() or 1
    if not settings.cluster.enabled:  # no more processes than streams
        count = min(count, max(len(settings.streams), 1))
    if settings.mqtt.url:  # events a larger set of processes left behind still go out
        adopt_orphans(settings.state_dir, count, settings.outbox_max_events)
    if count == 1:
        asyncio.run(_run_in_process(settings))
    else:
        if not settings.redis.url:
            # A bad blocklist file must stop here with one error, not crash-loop every child
            # (which each say what they refuse).
            Blocklist.from_files(
                settings.blocklists,
                settings.blocklist_algo,
                settings.max_distance,
                allow_degenerate=settings.allow_degenerate,
            )
        log.info("%d streams over %d worker processes", len(settings.streams), count)
        asyncio.run(_run_processes(settings, count))
