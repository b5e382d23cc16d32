"""``streamguard run``: its worker processes, the HTTP port, shutdown.

With one process, a `WorkerProcess` (runtime/process.py) runs beside the HTTP server.
With more, streams are dealt round-robin to worker processes (spawned, each a
`WorkerProcess` with its own event loop, blocklist and hash threads). The parent
serves HTTP, gathers each child's `ProcessReport` once a second, and restarts a
child that exits or hangs.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from streamguard.blocklist.memory import Blocklist
from streamguard.config import Settings, read_secret
from streamguard.events.outbox import adopt_orphans
from streamguard.infra.http import PostRoute, Response, json_response, serve
from streamguard.libc import die_with_parent, tune_malloc
from streamguard.observability import metrics
from streamguard.observability.logging import setup_logging
from streamguard.runtime.control import ControlPlane
from streamguard.runtime.loop_watchdog import LoopWatchdog
from streamguard.runtime.process import WorkerProcess

log = logging.getLogger("streamguard.run")
CHILD_STOP_TIMEOUT_S = 20.0  # a cluster member keeps watching during its handover
REPORT_WAIT_S = 0.5
START_LIMIT_TIMEOUTS = 10  # a start that keeps using CPU: at most this many timeout_s

Snapshots = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """What a worker process sends its parent once a second."""

    number: int
    streams: Snapshots
    ready: bool
    blocklist: dict[str, Any]


class Child(Protocol):
    """A worker process as the supervisor uses it: multiprocessing's, or a test's."""

    name: str

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class Reports(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> ProcessReport: ...


def cpu_ticks(pid: int) -> int | None:
    """CPU time process ``pid`` has used (user + system, in clock ticks); None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command, which may hold spaces
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)


class ProcessSupervisor:
    """Starts ``count`` worker processes, gathers their reports, and restarts any that
    exits or sends nothing for ``timeout_s`` (hung: a blocked event loop, a stopped
    process).

    Until its first report a process is starting: imports, the blocklist files. That
    takes 0.6 s on an idle machine but measured 9-19 s with the load at 30 on 2 cores,
    so it is not timed by the clock alone: a starting process counts as hung once it
    has used no CPU for ``timeout_s`` (stopped, blocked on a lock or a hung file
    system), or has not reported within ``START_LIMIT_TIMEOUTS`` times ``timeout_s``
    however busy it was."""

    def __init__(
        self,
        count: int,
        spawn: Callable[[int], Child],
        reports: Reports,
        timeout_s: float,
        cpu_used: Callable[[int], int | None] = cpu_ticks,
    ) -> None:
        self.count = count
        self.timeout_s = timeout_s
        self._spawn = spawn
        self._reports = reports
        self._cpu_used = cpu_used
        self.children: list[Child] = []
        self.latest: dict[int, ProcessReport] = {}
        self._reported_at: dict[int, float] = {}  # loop time of each one's last report
        # Of each process not yet reported: loop time it was started, then CPU it used
        # and when that last grew.
        self._started_at: dict[int, float] = {}
        self._progress: dict[int, tuple[int | None, float]] = {}

    def streams(self) -> Snapshots:
        return [state for number in sorted(self.latest) for state in self.latest[number].streams]

    def ready(self) -> tuple[bool, list[dict[str, Any]]]:
        """Whether every process is up and ready, and each one's blocklist status."""
        alive = len(self.latest) == self.count and all(c.is_alive() for c in self.children)
        ok = alive and all(report.ready for report in self.latest.values())
        return ok, [self.latest[number].blocklist for number in sorted(self.latest)]

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop``, then stop every process."""
        loop = asyncio.get_running_loop()
        self.children = [self._start(number, loop.time()) for number in range(self.count)]
        try:
            while not stop.is_set():
                with contextlib.suppress(queue.Empty):
                    report = await loop.run_in_executor(
                        None, self._reports.get, True, REPORT_WAIT_S
                    )
                    self.latest[report.number] = report
                    self._reported_at[report.number] = loop.time()
                if not stop.is_set():
                    await self.restart_failed(loop.time())
        finally:
            await self.stop_all()

    def _start(self, number: int, now: float) -> Child:
        self._started_at[number] = now
        self._progress.pop(number, None)
        return self._spawn(number)

    def _hung(self, number: int, child: Child, now: float) -> str | None:
        """Why process ``number`` counts as hung (for the log line), or None."""
        reported_at = self._reported_at.get(number)
        if reported_at is not None:
            silent_s = now - reported_at
            hung = silent_s > self.timeout_s
            return f"sent no state for {silent_s:.0f} s (hung)" if hung else None
        used = None if child.pid is None else self._cpu_used(child.pid)
        before, since = self._progress.get(number, (None, self._started_at[number]))
        if used != before:
            self._progress[number] = (used, now)
            since = now
        starting_s = now - self._started_at[number]
        if now - since > self.timeout_s:
            return (
                f"sent no state in the {starting_s:.0f} s since it started, and used no CPU "
                f"for {now - since:.0f} s (hung at its start)"
            )
        if starting_s > START_LIMIT_TIMEOUTS * self.timeout_s:
            return f"sent no state in the {starting_s:.0f} s since it started (hung at its start)"
        return None

    async def restart_failed(self, now: float) -> None:
        """Restart each process that exited or has been silent for too long."""
        for number, child in enumerate(self.children):
            hung = self._hung(number, child, now) if child.is_alive() else None
            if child.is_alive() and hung is None:
                continue
            if hung is not None:
                log.error("worker process %d %s; killing it and starting a new one", number, hung)
                child.kill()
                await asyncio.to_thread(child.join, CHILD_STOP_TIMEOUT_S)
                reason = "hung" if number in self._reported_at else "hung_at_start"
            else:
                log.error("worker process %d exited (code %s); restarting", number, child.exitcode)
                reason = "exited"
            self.latest.pop(number, None)
            self._reported_at.pop(number, None)
            self._progress.pop(number, None)
            if child.pid is not None:  # always: it was started
                metrics.process_exited(child.pid)
            metrics.WORKER_RESTARTS.labels(reason).inc()
            self.children[number] = self._start(number, now)

    async def stop_all(self) -> None:
        """SIGTERM each process (it stops its streams), then kill those that overrun."""
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for child in self.children:
            await asyncio.to_thread(child.join, max(deadline - time.monotonic(), 0))
            if child.is_alive():
                log.error("worker process %s did not stop in time; killed", child.name)
                child.kill()


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
    """With a cluster: register the configured streams, follow the control topics, and
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
        tasks.append(asyncio.create_task(plane.incident_subscriber().run()))
    try:
        yield plane.webhooks() if secret else {}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await plane.close()


@contextlib.asynccontextmanager
async def _serving(
    settings: Settings, routes: dict[str, Callable[[], Response]]
) -> AsyncIterator[None]:
    """The HTTP port (and with a cluster, the control plane) while the body runs."""
    async with _control_plane(settings) as webhooks:
        server = await serve(
            settings.http_host, settings.http_port, routes, webhooks, metrics.INTERNAL_ERRORS.inc
        )
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()


def _watchdog(settings: Settings, *, main: bool) -> LoopWatchdog:
    """The running loop's watchdog (runtime/loop_watchdog.py): blocked for half of
    ``worker_timeout_s``, counted and logged; the main process, blocked for all of it,
    exits to be started again (a worker is killed by its parent then)."""
    timeout_s = settings.worker_timeout_s
    return LoopWatchdog(asyncio.get_running_loop(), timeout_s / 2, timeout_s if main else None)


async def _run_in_process(settings: Settings) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    # Loads the blocklist files, on the loop: before the watchdog, which would take a long
    # load for a blocked loop.
    process = WorkerProcess(settings, member_id=settings.worker_id)
    routes = _routes(process.snapshots, lambda: (process.ready, [process.blocklist_status()]))
    with _watchdog(settings, main=True):
        async with _serving(settings, routes):
            await process.run(stop)


def _child_main(
    number: int, settings: Settings, reports: Any, log_level: int, parent_pid: int
) -> None:
    """Entry point of a worker process: its streams, no HTTP; reports go to the parent.
    It ends with the parent, however the parent ends (libc.die_with_parent)."""
    die_with_parent(parent_pid)
    setup_logging(log_level, process=f"worker-{number}")
    # Exiting must not wait for unsent reports: the parent stops reading them at
    # shutdown, and a full pipe would otherwise hold this process forever.
    reports.cancel_join_thread()

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        member_id = settings.worker_id and f"{settings.worker_id}-{number}"
        process = WorkerProcess(settings, number, member_id)

        def report() -> None:
            status = process.blocklist_status()
            reports.put(ProcessReport(number, process.snapshots(), process.ready, status))

        with _watchdog(settings, main=False):
            await process.run(stop, report)

    asyncio.run(main())


async def _run_processes(settings: Settings, count: int) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    with metrics.multiprocess_dir() as metrics_dir:  # before the workers start
        context = multiprocessing.get_context("spawn")
        reports = context.Queue()
        if settings.cluster.enabled:  # every process claims from the registry
            parts = [settings] * count
        else:
            parts = [replace(settings, streams=settings.streams[i::count]) for i in range(count)]
        level = logging.getLogger().level

        def spawn(number: int) -> BaseProcess:
            child = context.Process(
                target=_child_main,
                args=(number, parts[number], reports, level, os.getpid()),
                name=f"streamguard-worker-{number}",
            )
            child.start()
            return child

        supervisor = ProcessSupervisor(count, spawn, reports, settings.worker_timeout_s)
        routes = _routes(supervisor.streams, supervisor.ready, metrics_dir)
        with _watchdog(settings, main=True):
            async with _serving(settings, routes):
                await supervisor.run(stop)


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
