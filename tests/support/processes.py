"""Stopping the real processes the tests and benchmarks start, without leaving any behind."""

import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

from .ports import wait_for_ports

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


class Server:
    """A server process the tests start, crash (kill -9) and restart on the same port."""

    process: subprocess.Popen | None = None
    port: int

    def _launch(self, command: list[str]) -> None:
        self.process = process = subprocess.Popen(command)
        wait_for_ports(self.port, alive=lambda: process.poll() is None)

    def kill(self) -> None:
        """kill -9: what a crash does."""
        if self.process is not None:
            stop(self.process, signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may never reap one)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
