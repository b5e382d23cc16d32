"""A worker process of `run --processes 2` crashes (kill -9) or hangs (SIGSTOP, as a
blocked event loop would look): the supervisor starts it again, after
`worker_timeout_s` (3 s here) for a hang; its streams are watched again, its outbox is
delivered, and the streams of the other process are not disturbed."""

import os
import re
import signal
import time
from dataclasses import dataclass

import pytest

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
