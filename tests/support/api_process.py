"""`streamguard api` as a real process, as an operator runs it, and uploads POSTed to it.

Shared by tests/integration/test_api_service.py, tests/integration/test_reupload.py and
bench/bench_reupload.py.
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .ports import free_port, wait_for_ports
from .processes import stop as stop_process

READY_TIMEOUT_S = 20.0


class Api:
    """A ``streamguard api`` process on a free port; its log in ``log_path``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "streamguard", "api", "--listen", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(
            [*command, *args], stdout=self._log, stderr=self._log, env=env
        )
        wait_for_ports(self.port, timeout_s=30, alive=lambda: self.process.poll() is None)

    def get(self, path: str) -> tuple[int, dict]:
        return self._answer(urllib.request.Request(f"http://127.0.0.1:{self.port}{path}"))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        url = f"http://127.0.0.1:{self.port}{path}"
        return self._answer(urllib.request.Request(url, body, headers, method="POST"))

    @staticmethod
    def _answer(request: urllib.request.Request) -> tuple[int, dict]:
        """Status and JSON answer, errors' included."""
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> int:
        code = stop_process(self.process)
        self._log.close()
        return code

    def match(self, video: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/match`` with a recorded stream (FLV)."""
        return self.post("/v1/match", video, {"Content-Type": "video/x-flv"})


@contextmanager
def api_process(args: list[str], log_path: Path) -> Iterator[Api]:
    """An ``Api`` once ``/readyz`` says its list is loaded; stopped on exit, where an exit
    code other than 0 fails (with its log)."""
    api = Api(args, log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while api.get("/readyz")[0] != 200:
            assert time.monotonic() < deadline, f"API not ready\n{log_path.read_text()}"
            time.sleep(0.05)
        yield api
    finally:
        code = api.stop()
    assert code == 0, f"api exited {code}\n{log_path.read_text()}"


def until_decided(
    api: Api, recording: Path, timeout_s: float, decision: str | None = "kill"
) -> tuple[int, dict[str, Any]]:
    """POST ``recording`` (read anew each time) until the answer's decision is
    ``decision`` or ``timeout_s`` has passed: the last status and answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, answer = api.match(recording.read_bytes())
        if answer.get("decision") == decision or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.02)
