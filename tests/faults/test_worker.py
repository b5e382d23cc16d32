"""A worker process of `run --processes 2` crashes (kill -9) or hangs (SIGSTOP, as a
blocked event loop would look): the supervisor starts it again, after
`worker_timeout_s` (3 s here) for a hang; its streams are watched again, its outbox is
delivered, and the streams of the other process are not disturbed."""

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..support.processes import children_of, running
from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Failure:
    fault: str
    signal: int
    reason: str  # the label of streamguard_worker_restarts_total
    log_line: str  # a pattern
    lead_s: float  # before flagged-b's next flagged frame, for the restart to see it


FAILURES = {
    "killed": Failure(
        "a worker process of `run --processes 2` killed (kill -9)",
        signal.SIGKILL,
        "exited",
        r"worker process 1 exited \(code -9\); restarting",
        7.5,
    ),
    "hung": Failure(
        "a worker process of `run --processes 2` hangs (SIGSTOP)",
        signal.SIGSTOP,
        "hung",
        r"worker process 1 sent no state for \d s \(hung\); killing it and starting a new one",
        9.5,
    ),
}


@pytest.mark.parametrize("how", FAILURES)
def test_worker_process_fails(redis, mosquitto, nginx, tmp_path, record, how):
    failure = FAILURES[how]
    restarts = f'streamguard_worker_restarts_total{{reason="{failure.reason}"}}'
    record.fault = failure.fault
    with Scene(tmp_path, redis, mosquitto, nginx, processes=2) as scene:
        # Streams are dealt round-robin: worker 0 has flagged-a and clean, worker 1 flagged-b.
        (victim,) = {e["worker_id"] for e in scene.delivered_for("flagged-b")}
        (survivor,) = {e["worker_id"] for e in scene.delivered_for("flagged-a")}
        assert victim != survivor
        pid = int(victim.rpartition("/")[2])
        scene.before_flagged(failure.lead_s, ["flagged-b"])
        before = scene.streams()
        failed = time.time()
        os.kill(pid, failure.signal)
        scene.service.wait_for(
            lambda: (
                scene.streams()["flagged-b"]["connects"] == 1
                and scene.streams()["flagged-b"]["state"] == "watching"
                and scene.streams()["flagged-b"]["frames_sampled"] > 0
                and scene.metric(restarts) == 1
            ),
            20,
            "the worker restarted and watching flagged-b again",
        )
        record.saw(
            f"restarted by the supervisor; flagged-b watched again in {time.time() - failed:.1f} s"
        )
        record.saw(f"`{restarts}` +1")
        scene.wait_detected_after(failed, ["flagged-b"], 2 * LOOP_S + 5)
        record.detection_kept = True
        workers = {e["worker_id"] for e in scene.delivered_for("flagged-b", failed)}
        assert victim not in workers, workers
        record.saw("a kill on flagged-b from the new worker process")
        scene.wait_detected_after(failed, ["flagged-a"], LOOP_S + 5)
        problems = scene.disturbed(["flagged-a", "clean"], before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert not problems, problems
        record.saw("worker 0's streams watched throughout, its kills delivered")
        assert scene.service.get("/readyz")["ready"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung process is gone, not left behind
    logged = re.search(failure.log_line, scene.service.log())
    assert logged, failure.log_line
    record.saw(f"log: `{logged[0]}`")
    assert scene.exit_code == 0


def worker_processes(pid: int) -> set[int]:
    """The spawned worker processes of `run` ``pid`` now (not the resource tracker)."""
    found = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            with contextlib.suppress(OSError):
                if b"--multiprocessing-fork" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(int(child))
    return found


def stop_the_next_one(pid: int, known: set[int], timeout_s: float) -> tuple[int, float]:
    """SIGSTOP the first worker process of ``pid`` not in ``known`` as soon as it appears
    (polled every 10 ms: a worker's imports alone take 0.6 s, so it has not reported yet);
    its pid and when it was stopped."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for new in worker_processes(pid) - known:
            os.kill(new, signal.SIGSTOP)
            return new, time.time()
        time.sleep(0.01)
    raise AssertionError(f"no new worker process within {timeout_s} s")


def test_worker_process_hangs_at_its_start(redis, mosquitto, nginx, tmp_path, record):
    """A worker process that hangs before its first report: stopped (SIGSTOP) right after
    it was spawned, as one stuck at its start (a hung file system under its imports or
    blocklist, a lock) would look. To get a worker that has not reported once the scene
    runs, worker 1 is killed first; its replacement is the one that hangs."""
    record.fault = "a worker process of `run --processes 2` hangs at its start (SIGSTOP)"
    restarts = 'streamguard_worker_restarts_total{reason="hung_at_start"}'
    with Scene(tmp_path, redis, mosquitto, nginx, processes=2) as scene:
        (victim,) = {e["worker_id"] for e in scene.delivered_for("flagged-b")}
        main = scene.service.process.pid
        known = worker_processes(main)
        assert int(victim.rpartition("/")[2]) in known and len(known) == 2, known
        before = scene.streams()
        os.kill(int(victim.rpartition("/")[2]), signal.SIGKILL)
        hung, stopped = stop_the_next_one(main, known, 20)
        try:
            scene.service.wait_for(
                lambda: scene.metric(restarts) == 1, 20, "the hung worker restarted"
            )
            restarted_s = time.time() - stopped
            assert hung not in worker_processes(main)
            record.saw(
                f"its replacement, stopped before its first report, was killed and started "
                f"again {restarted_s:.1f} s later (`worker_timeout_s = 3`); `{restarts}` +1"
            )
            assert restarted_s <= 3 + 5, restarted_s  # worker_timeout_s, and polling under load
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung, signal.SIGCONT)
        scene.service.wait_for(
            lambda: scene.streams()["flagged-b"]["state"] == "watching", 20, "flagged-b watched"
        )
        record.saw(f"flagged-b watched again {time.time() - stopped:.1f} s after the hang began")
        scene.wait_detected_after(stopped, ["flagged-b"], 2 * LOOP_S + 5)
        record.detection_kept = True
        scene.wait_detected_after(stopped, ["flagged-a"], LOOP_S + 5)
        problems = scene.disturbed(["flagged-a", "clean"], before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert not problems, problems
        assert scene.service.get("/readyz")["ready"]
    line = scene.logged(r"(worker process 1 sent no state in the \d+ s since it started, .*?)\n")
    assert "used no CPU" in line and "(hung at its start)" in line, line
    record.saw(f"log: `{line}`")
    assert scene.exit_code == 0


def test_main_process_killed(redis, mosquitto, nginx, tmp_path, record):
    """SIGKILL of `run`'s main process (the OOM killer, a supervisor that signals the main
    pid only): none of its processes is left 5 s later (they would watch and publish on
    beside the next instance), and the next instance delivers what they had decided."""
    record.fault = "`run --processes 2`: its main process killed (kill -9), then started again"
    with Scene(tmp_path, redis, mosquitto, nginx, processes=2) as scene:
        main = scene.service.process.pid
        children = children_of(main)
        assert len(worker_processes(main)) == 2 and len(children) >= 3  # + resource tracker
        scene.before_flagged(1.0)
        killed = time.time()
        scene.service.process.kill()
        scene.service.process.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(running, children)):
            time.sleep(0.1)
        left = [pid for pid in children if running(pid)]
        assert left == [], f"processes of the killed run still running: {left}"
        record.saw(
            f"its {len(children)} child processes (2 workers, the resource tracker) ended "
            f"within {time.time() - killed:.1f} s"
        )
        scene.start_again()
        ready_s = time.time() - killed
        record.saw(f"started again (as by a service manager): ready {ready_s:.1f} s after the kill")
        detected_s = scene.wait_detected_after(killed + 1.0, scene.flagged, 2 * LOOP_S + 15)
        record.detection_kept = True
        record.saw(f"kills for flagged frames shown {detected_s:.1f} s after the kill")
        scene.conclude(record)
