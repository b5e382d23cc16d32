"""How the long-running parts of a process start, stop and keep their connections.

Every part that runs until it is told to stop (the blocklist sync, the MQTT sink, the
MQTT subscribers, the cluster member, enforce's registry copy) is a `Service`:
``run()`` works until ``stop()`` is called, then releases what it holds and returns.
Stopping never relies on cancellation: redis-py can lose a cancellation that lands in
a blocking read (redis/redis-py#2028), and a task that swallowed it never ends.

Those that hold a connection keep its state in a `Link`, the one place that owns the
back-off between attempts, ``connected`` / ``last_error``, and the log-once rule: an
error line when a connection is lost or fails in a new way, a debug line when it keeps
failing the same way, an info line when it is back.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamguard.backoff import backoff_s

log = logging.getLogger("streamguard.lifecycle")


class Service(Protocol):
    async def run(self) -> None:
        """Work until `stop`, reconnecting as needed; release everything before returning."""

    def stop(self) -> None:
        """Make `run` return soon (each service says how soon)."""

    def status(self) -> dict[str, Any]:
        """What /readyz shows of it."""


class Link:
    """The state of one connection that is retried until it holds."""

    def __init__(
        self, log: logging.Logger, *, retry_initial_s: float = 0.5, retry_max_s: float = 15.0
    ) -> None:
        self.connected = False
        self.last_error = ""
        self.failures = 0  # in a row
        self._log = log
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s

    def up(self, message: str = "", *args: object) -> None:
        """Connected: log ``message % args`` if it was not (a first connect or a return)."""
        if not self.connected and message:
            self._log.info(message, *args)
        self.connected, self.last_error, self.failures = True, "", 0

    def down(self, error: str, message: str, *args: object) -> None:
        """Lost or failed again: ``message % args`` at error level when the connection
        was up or the error is new, at debug level while it keeps failing the same way."""
        new = self.connected or error != self.last_error
        self._log.log(logging.ERROR if new else logging.DEBUG, message, *args)
        self.connected, self.last_error = False, error
        self.failures += 1

    async def retry_after_backoff(self, stop: asyncio.Event | None = None) -> None:
        """Wait the jittered back-off for the failures so far; return early on ``stop``."""
        delay = backoff_s(self.failures, self._retry_initial_s, self._retry_max_s)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


@dataclass(frozen=True, slots=True)
class Running:
    """A started service, its task, and how long its stop may take."""

    name: str
    service: Service
    task: asyncio.Task[None]
    stop_timeout_s: float


def start(name: str, service: Service, stop_timeout_s: float) -> Running:
    return Running(name, service, asyncio.create_task(service.run(), name=name), stop_timeout_s)


async def stop(running: Running) -> None:
    """Stop one service and wait for it; one that overruns its time is cancelled."""
    running.service.stop()
    try:
        await asyncio.wait_for(asyncio.shield(running.task), running.stop_timeout_s)
    except TimeoutError:
        log.warning("%s did not stop in %.0f s; cancelled", running.name, running.stop_timeout_s)
        running.task.cancel()
        await asyncio.wait({running.task}, timeout=1.0)  # a lost cancellation must not hang
    except Exception:
        log.exception("%s failed while stopping", running.name)


async def stop_in_order(services: Sequence[Running]) -> None:
    """Stop ``services`` one after another, in the order given."""
    for running in services:
        await stop(running)
