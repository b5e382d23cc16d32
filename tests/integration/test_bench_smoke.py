"""Every benchmark's ``--smoke`` run passes: the whole code path on tiny sizes, so a change
that breaks a benchmark fails here rather than at its next full run. Figures and targets
are not judged.

The runs mostly wait (for publishers, streams watched, measured windows), so several
run at once, in the order below: at most MAX_AT_ONCE, each started as another ends. All
sixteen at once took the load to 10-20 on 2 cores, and bench_events' and
bench_reupload's `run` did not bind its port in 20 s. bench_api's run saturates both
cores on purpose (its API pinned to one, wrk to the other): it runs alone, last. Left
to other tests: bench_benign's smoke run (test_degenerate.py, which checks its figures
too); bench_quality's (being rewritten as a thin call of ``streamguard eval``, whose
``--quick`` run test_eval.py makes).
"""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..support.processes import stop

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240.0  # from the run's start

# Each run: the benchmark's module and its options besides --smoke; {out} is a fresh
# directory. The longest start first; bench_sampling's floods run beside its other parts.
SMOKES = {
    "cluster": ["bench.bench_cluster", "--out", "{out}"],
    "sampling": [
        "bench.bench_sampling",
        "--out",
        "{out}",
        "--parts",
        "decode",
        "probability",
        "cpu",
    ],
    "live": ["bench.bench_live", "--out", "{out}"],
    "events": ["bench.bench_events", "--out", "{out}"],
    "broker": ["bench.bench_broker", "--out", "{out}"],
    "incident": ["bench.bench_incident", "--out", "{out}"],
    "reupload": ["bench.bench_reupload", "--out", "{out}"],
    "soak": ["bench.bench_soak", "--out", "{out}"],
    "sampling-flood": ["bench.bench_sampling", "--out", "{out}", "--parts", "flood"],
    "blocklist": ["bench.bench_blocklist", "--out", "{out}"],
    "scan": ["bench.bench_scan", "--out", "{out}"],
    "known-video": ["bench.bench_known_video", "--out", "{out}"],
    "api": ["bench.bench_api", "--out", "{out}"],
    "hash": ["bench.bench_hash"],
    "pictures": ["bench.bench_pictures"],
    "index": ["bench.bench_index"],
    "vpdq": ["bench.bench_vpdq"],
}


MAX_AT_ONCE = 6
SATURATING = {"api"}  # run alone, after every other


@dataclass(frozen=True, slots=True)
class Run:
    process: subprocess.Popen
    log: Path  # its stdout and stderr
    started: float  # time.monotonic()


def start(name: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp(name)
    command = [sys.executable, "-m", *(a.format(out=out) for a in SMOKES[name]), "--smoke"]
    log = out / "smoke.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    return Run(process, log, time.monotonic())


def wait_for_one(running: list[Run]) -> None:
    """Until one of ``running`` ends (or overruns its time: its own test says so), and
    take it out."""
    while True:
        for run in running:
            if run.process.poll() is not None or time.monotonic() > run.started + TIMEOUT_S:
                running.remove(run)
                return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory) -> Iterator[dict[str, Run]]:
    """The smoke runs of the tests selected in this module, started as the module's
    docstring says; returns once the last has started. Runs still going at the end are
    interrupted (SIGINT: a benchmark stops what it started)."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module
    ]
    ordinary = [name for name in selected if name not in SATURATING]
    runs: dict[str, Run] = {}
    running: list[Run] = []
    for name in [*ordinary, *(name for name in selected if name in SATURATING)]:
        limit = 1 if name in SATURATING else MAX_AT_ONCE
        while len(running) >= limit:
            wait_for_one(running)
        runs[name] = start(name, tmp_path_factory)
        running.append(runs[name])
    yield runs
    for run in runs.values():
        stop(run.process, signal.SIGINT, timeout_s=30)


@pytest.mark.parametrize("name", SMOKES)
def test_the_smoke_run_passes(name, smoke_runs):
    run = smoke_runs[name]
    try:
        code = run.process.wait(max(run.started + TIMEOUT_S - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        code = None
    assert code == 0, f"exit code {code}:\n{run.log.read_text(errors='replace')[-6000:]}"
