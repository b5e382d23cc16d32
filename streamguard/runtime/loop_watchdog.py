"""A thread that notices when its process's event loop stops running.

Everything of a `run` process that is not a stream's reader (deciding, publishing,
the HTTP port, the reports to the parent) runs on one event loop. A synchronous call
stuck on it stops all of that at once, and nothing on the loop can notice. In
`run --processes N` the parent notices a worker whose reports stop, but nothing
watched the main process itself: one blocked writing its log line to a stderr pipe
that its reader had stopped emptying (tests/faults/test_loop_blocked.py) kept its
port open and answered nothing, for ever, with no line and no metric.

The loop stamps a heartbeat every `BEAT_S`; this thread checks it. Blocked for
``blocked_after_s``: counted (`streamguard_event_loop_blocked_total`) and one error
line naming where the loop is stuck. Blocked for ``exit_after_s`` (the main process
only): one more line, and the process ends with `EXIT_LOOP_BLOCKED` so that its
service manager starts it again; its worker processes end with it, and what it had
decided is in the outbox, which the next instance delivers. Log lines are written from
a helper thread, waited for at most `SAY_TIMEOUT_S`: when stderr itself is what
blocks, the exit must not wait for it.
"""

import logging
import os
import sys
import threading
import time
import traceback
from asyncio import AbstractEventLoop, TimerHandle
from types import TracebackType

from streamguard.observability import metrics

log = logging.getLogger("streamguard.watchdog")
BEAT_S = 0.25
CHECK_S = 0.25
SAY_TIMEOUT_S = 1.0
EXIT_LOOP_BLOCKED = 3  # `run`'s exit code after its event loop was blocked too long
FRAMES_SHOWN = 3  # innermost frames named in the log line


class LoopWatchdog:
    """Watches ``loop`` from a thread while used as a context manager (entered on the
    loop's own thread)."""

    def __init__(
        self, loop: AbstractEventLoop, blocked_after_s: float, exit_after_s: float | None
    ) -> None:
        self._loop = loop
        self._blocked_after_s = blocked_after_s
        self._exit_after_s = exit_after_s
        self._loop_thread = threading.get_ident()
        self._beat_at = time.monotonic()
        self._beat: TimerHandle | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def __enter__(self) -> "LoopWatchdog":
        self._stamp()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.cancel()
        self._thread.join()

    def _stamp(self) -> None:
        self._beat_at = time.monotonic()
        self._beat = self._loop.call_later(BEAT_S, self._stamp)

    def _watch(self) -> None:
        blocked_since: float | None = None  # the heartbeat of a block already reported
        while not self._stop.wait(CHECK_S):
            beat_at = self._beat_at
            blocked_s = time.monotonic() - beat_at
            if blocked_since is not None and beat_at != blocked_since:
                ran_again_s = beat_at - blocked_since
                _say(logging.WARNING, "event loop running again after %.1f s", ran_again_s)
                blocked_since = None
            if blocked_since is None and blocked_s >= self._blocked_after_s:
                blocked_since = beat_at
                metrics.EVENT_LOOP_BLOCKED.inc()
                _say(
                    logging.ERROR,
                    "event loop blocked for %.1f s, in %s",
                    blocked_s,
                    self._where(),
                )
            if self._exit_after_s is not None and blocked_s >= self._exit_after_s:
                _say(
                    logging.CRITICAL,
                    "event loop blocked for %.1f s: exiting (code %d) to be started again",
                    blocked_s,
                    EXIT_LOOP_BLOCKED,
                )
                os._exit(EXIT_LOOP_BLOCKED)

    def _where(self) -> str:
        """The innermost frames of the loop's thread: files, lines, functions; no values."""
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "an unknown place"
        stack = traceback.extract_stack(frame)[-FRAMES_SHOWN:]
        return " < ".join(f"{f.name} ({_short(f.filename)}:{f.lineno})" for f in reversed(stack))


def _short(filename: str) -> str:
    """A source file as its package directory and name: ``logging/__init__.py``."""
    return "/".join(filename.split(os.sep)[-2:])


def _say(level: int, message: str, *args: object) -> None:
    """Log from a helper thread, waiting for it at most `SAY_TIMEOUT_S`."""
    writer = threading.Thread(target=log.log, args=(level, message, *args), daemon=True)
    writer.start()
    writer.join(SAY_TIMEOUT_S)
