"""Fixtures of the fault-injection suite, and the record of what each fault did.

Redis and mosquitto are the integration tests' fixtures (fresh per test, with
``kill()`` and ``start()`` on the same port); nginx-rtmp is a restartable one. Each
test fills a :class:`FaultRecord`; at the end of the session the records are written
as JSON to ``$STREAMGUARD_FAULTS_OUT`` (default ``tests/faults/out/faults.json``),
from which ``python -m tests.faults.report`` renders the table of docs/reliability.md.
"""

import fcntl
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from ..integration.conftest import _FAILED, _server
from ..integration.conftest import mosquitto as mosquitto  # the integration tests' fixtures
from ..integration.conftest import pytest_runtest_makereport as pytest_runtest_makereport
from ..integration.conftest import redis as redis
from ..support.nginx import NginxUnavailable, RestartableNginxRtmp

OUT_VARIABLE = "STREAMGUARD_FAULTS_OUT"
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "faults.json"
_RECORDS = pytest.StashKey[list]()
_STARTED = pytest.StashKey[float]()  # when the first fault test started


@dataclass
class FaultRecord:
    """One row of the faults table, filled by the test as it goes."""

    fault: str
    did: list[str] = field(default_factory=list)  # what the system did, in order
    detection_kept: bool | None = None  # a flagged frame shown after the fault was detected
    detection_applies: bool = True  # False: the fault is past detection (enforce)
    events_decided: int | None = None  # kills the run log shows as decided
    events_delivered: int | None = None  # kill messages the platform received
    events_lost: int | None = None  # decided, never received
    duplicates: int | None = None  # copies received again (at-least-once delivery)
    reused_ids: int | None = None  # decisions with the event_id of an earlier one
    others_unaffected: bool | None = None
    test: str = ""
    outcome: str = ""  # passed / failed
    duration_s: float = 0.0

    def saw(self, text: str) -> None:
        self.did.append(text)


@pytest.fixture
def nginx(request, tmp_path) -> Iterator[RestartableNginxRtmp]:
    """A fresh nginx-rtmp per test that can be killed, paused and started again."""
    server = RestartableNginxRtmp(tmp_path / "nginx")

    class Started:
        def __enter__(self) -> RestartableNginxRtmp:
            server.start()
            return server

        def __exit__(self, *exc_info: object) -> None:
            server.stop()

    yield from _server(request, Started(), NginxUnavailable, lambda server: server.error_log)


@pytest.fixture
def record(request) -> Iterator[FaultRecord]:
    """The record of this test's fault; kept, with the test's outcome, for the report."""
    request.config.stash.setdefault(_STARTED, time.time())
    entry = FaultRecord(fault=request.node.name, test=request.node.nodeid)
    started = time.monotonic()
    yield entry
    entry.duration_s = round(time.monotonic() - started, 1)
    entry.outcome = "failed" if request.node.stash.get(_FAILED, False) else "passed"
    request.config.stash.setdefault(_RECORDS, []).append(entry)


def pytest_sessionfinish(session) -> None:
    records = session.config.stash.get(_RECORDS, [])
    if not records:
        return
    path = Path(os.environ.get(OUT_VARIABLE) or DEFAULT_OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = session.config.stash.get(_STARTED, time.time())
    run = {
        "run": os.environ.get("PYTEST_XDIST_TESTRUNUID", ""),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "commit": _commit(),
        "host": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "faults": [asdict(entry) for entry in records],
    }
    # Under pytest-xdist every worker ends its own session: they add to one file.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if run["run"] and path.exists():
            earlier = json.loads(path.read_text())
            if earlier.get("run") == run["run"]:
                run["faults"] = earlier["faults"] + run["faults"]
                run["started_at"] = min(earlier["started_at"], run["started_at"])
                run["duration_s"] = max(earlier["duration_s"], run["duration_s"])
        path.write_text(json.dumps(run, indent=2) + "\n")


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
    except OSError:
        return ""
    return done.stdout.strip()
