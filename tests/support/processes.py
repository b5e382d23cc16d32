"""Stopping the real processes the tests and benchmarks start, without leaving any behind."""

import os
import signal
import subprocess
from contextlib import suppress

STOP_TIMEOUT_S = 20.0


def stop(
    process: subprocess.Popen,
    sig: int = signal.SIGTERM,
    timeout_s: float = STOP_TIMEOUT_S,
    *,
    group: bool = False,
) -> int:
    """Send ``sig``, wait up to ``timeout_s``, then SIGKILL; returns the exit code.

    ``group``: the process leads its own process group (``start_new_session``); whatever
    is left of the group is killed too, so spawned children never outlive the caller.
    """
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    if group:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait()
