"""The event loop of single-process `run` blocks: its log goes to a pipe whose reader
stops reading (a log collector that stalls: journald stuck on its disk, a container
runtime's blocking log driver), so the next log line's `write` blocks the loop, and
with it deciding, publishing and the HTTP port. No hook in the product: the pipe is
filled from outside.

Blocked for half of `worker_timeout_s` (8 s here), the loop's watchdog counts it and
logs where the loop is stuck; blocked for all of it, `run` exits with code 3 and is
started again (here by the test, as a service manager would); the kill it had decided
is delivered from its outbox by the next instance."""

import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
TIMEOUT_S = 8.0  # worker_timeout_s: the watchdog logs at 4 s, exits at 8 s
BLOCKED = "streamguard_event_loop_blocked_total"
FILLER = b"#" * 4095 + b"\n"  # whole lines, atomic in a pipe


class LogCollector:
    """Copies the service's stderr from a pipe to its log file, until `stall`."""

    def __init__(self, log_path: Path) -> None:
        read_end, self.write_end = os.pipe()
        self._reader = os.fdopen(read_end, "rb", buffering=0)
        self._log_path = log_path
        self._reading = threading.Event()
        self._reading.set()
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        while self._reading.wait() and (chunk := self._reader.read(65536)):
            with self._log_path.open("ab") as log:
                log.write(b"".join(line for line in chunk.splitlines(True) if line != FILLER))

    def stall(self) -> None:
        """Stop reading, and fill the pipe: the service's next write blocks."""
        self._reading.clear()
        # A description of its own, non-blocking (the service's stays blocking).
        writer = os.open(f"/proc/self/fd/{self.write_end}", os.O_WRONLY | os.O_NONBLOCK)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.write(writer, FILLER)
                except BlockingIOError:
                    time.sleep(0.2)  # the copier may have taken one more chunk: fill again
                    try:
                        os.write(writer, FILLER)
                    except BlockingIOError:
                        return
        finally:
            os.close(writer)

    def resume(self) -> None:
        self._reading.set()

    def close(self) -> None:
        self.resume()
        os.close(self.write_end)
        self._thread.join(10)


def answers(scene: Scene) -> bool:
    """Whether the HTTP port, served by the event loop, answers within half a second."""
    url = f"http://127.0.0.1:{scene.service.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except (OSError, urllib.error.URLError):
        return False


def blocked_from(scene: Scene, timeout_s: float) -> float:
    """Wait until the loop no longer answers; when it stopped (within 0.6 s)."""
    deadline = time.monotonic() + timeout_s
    while answers(scene):
        assert time.monotonic() < deadline, f"the loop still answers after {timeout_s} s"
        time.sleep(0.1)
    return time.time()


def test_event_loop_blocked(redis, mosquitto, nginx, tmp_path, record):
    record.fault = (
        "the event loop of single-process `run` blocked: its stderr pipe no longer read, "
        "for 5 s and then for good"
    )
    collector = LogCollector(tmp_path / "run.log")
    try:
        with Scene(
            tmp_path,
            redis,
            mosquitto,
            nginx,
            worker_timeout_s=TIMEOUT_S,
            stderr=collector.write_end,
        ) as scene:
            flagged = scene.flagged
            # 1. Blocked for 5 s, between the watchdog's 4 s and its 8 s: counted, logged.
            scene.before_flagged(1.5)
            collector.stall()
            since = blocked_from(scene, LOOP_S + 5)
            time.sleep(since + 5.0 - time.time())
            collector.resume()
            scene.service.wait_for(lambda: answers(scene), 10, "the loop running again")
            assert scene.metric(BLOCKED) == 1
            again = r"event loop running again after ([\d.]+) s"
            scene.service.wait_for(lambda: re.search(again, scene.service.log()), 10, "logged")
            where = scene.logged(r"event loop blocked for [\d.]+ s, in (.*)")
            assert "logging/__init__.py" in where, where  # stuck in the log handler's write
            ran_again_s = float(scene.logged(again))
            assert 4.0 <= ran_again_s < TIMEOUT_S, ran_again_s
            record.saw(
                f"blocked {ran_again_s:.1f} s: `{BLOCKED}` +1, the line `event loop blocked "
                f"for N s, in FUNCTION (FILE:LINE) < …` named the log handler's write"
            )
            # 2. Blocked for good: the process ends, to be started again.
            scene.before_flagged(1.5)
            collector.stall()
            since = blocked_from(scene, LOOP_S + 5)
            code = scene.service.process.wait(TIMEOUT_S + 10)
            exited_s = time.time() - since
            assert code == 3, code
            assert exited_s <= TIMEOUT_S + 3, exited_s
            record.saw(
                f"blocked for good: exited with code 3 {exited_s:.1f} s after it stopped "
                f"answering (`worker_timeout_s = {TIMEOUT_S:g}`)"
            )
            collector.resume()
            restarted = time.time()
            scene.start_again()
            record.saw(
                f"started again (as by a service manager): ready in {time.time() - restarted:.1f} s"
            )
            scene.wait_detected_after(restarted, flagged, LOOP_S + 10)
            record.detection_kept = True
            scene.conclude(record)
            unlogged = len(scene.delivered() - scene.decided())
            record.saw(
                f"{unlogged} kill(s) committed to the outbox as the loop blocked on its "
                "decision line (never logged) were delivered by the next instance"
            )
    finally:
        collector.close()
    assert re.search(r"event loop running again after", "".join(scene.earlier_logs))
    assert scene.exit_code == 0
