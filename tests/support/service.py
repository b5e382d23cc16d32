"""Run `streamguard run` as a real process and watch it from outside, as a platform would."""

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .ports import free_port, wait_for_ports
from .processes import stop as stop_process

# The decision line of the run log (docs/operations.md), with the event id it published.
DECISION = re.compile(
    r"stream (?P<stream>\S+): kill: matched .* \(event (?P<event_id>[0-9a-f-]+)\)"
)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: sample (with its labels) -> value."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


PORT_ATTEMPTS = 3
_PORT_TAKEN = b"address already in use"


class Service:
    """A `streamguard run` process: its events (stdout), its log (stderr), its /streams."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        *,
        start_timeout_s: float = 20,
        port: int | None = None,
        stderr: int | None = None,
    ) -> None:
        """Start it and wait for its HTTP port. A free port can be taken by another process
        before `run` binds it (many run side by side under pytest-xdist): then it starts
        again on another, unless the caller chose the port. ``stderr``: a file descriptor
        for its log instead of ``log_path`` (the caller copies it there)."""
        self.log_path = log_path
        self._stderr = stderr
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = port or free_port()
            self._start(args)
            try:
                wait_for_ports(
                    self.port, timeout_s=start_timeout_s, alive=lambda: self.process.poll() is None
                )
                return
            except BaseException as exc:  # one that never came up must not outlive its caller
                self.stop()
                taken = (
                    isinstance(exc, RuntimeError) and _PORT_TAKEN in log_path.read_bytes().lower()
                )
                if port is not None or attempt == PORT_ATTEMPTS or not taken:
                    raise

    def _start(self, args: list[str]) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamguard", "run", "--http", f"127.0.0.1:{self.port}", *args],
            stdout=subprocess.PIPE,
            stderr=self._log if self._stderr is None else self._stderr,
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    def _read_events(self) -> None:
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as reply:
            return json.loads(reply.read())

    def streams(self) -> dict[str, dict[str, Any]]:
        return {state["stream_id"]: state for state in self.get("/streams")}

    def metrics(self) -> dict[str, float]:
        """/metrics: sample (with its labels) -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as reply:
            return parse_metrics(reply.read().decode())

    def wait_for(self, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        """Poll ``condition`` until truthy; fail with the service's log after ``timeout_s``.

        A KeyError counts as "not yet": with several worker processes, a stream appears
        in /streams once its process has reported (within a second). So does a 503
        (not ready yet).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                result = condition()
            except KeyError:
                result = None
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise
                result = None
            if result:
                return result
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout_s} s\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit code (killed after a timeout)."""
        code = stop_process(self.process)
        self._reader.join(timeout=5)
        self._log.close()
        return code
