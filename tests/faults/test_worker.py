"""A worker process of `run --processes 2` crashes (kill -9): the supervisor starts it
again, its streams are watched again, its outbox is delivered, and the streams of the
other process are not disturbed."""

import os
import signal
import time

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
RESTARTS = "streamguard_worker_restarts_total"


def test_worker_process_killed(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "a worker process of `run --processes 2` killed (kill -9)"
    with Scene(tmp_path, redis, mosquitto, nginx, processes=2) as scene:
        # Streams are dealt round-robin: worker 0 has flagged-a and clean, worker 1 flagged-b.
        (victim,) = {e["worker_id"] for e in scene.delivered_for("flagged-b")}
        (survivor,) = {e["worker_id"] for e in scene.delivered_for("flagged-a")}
        assert victim != survivor
        pid = int(victim.rpartition("/")[2])
        # Long enough before flagged-b's next flagged frame for a restart to see it.
        scene.before_flagged(7.5, ["flagged-b"])
        before = scene.streams()
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        scene.service.wait_for(
            lambda: (
                scene.streams()["flagged-b"]["connects"] == 1
                and scene.streams()["flagged-b"]["state"] == "watching"
                and scene.streams()["flagged-b"]["frames_sampled"] > 0
                and scene.metric(RESTARTS) == 1
            ),
            20,
            "the worker restarted and watching flagged-b again",
        )
        record.saw(
            f"restarted by the supervisor; flagged-b watched again in {time.time() - killed:.1f} s"
        )
        record.saw(f"`{RESTARTS}` +1")
        scene.wait_detected_after(killed, ["flagged-b"], 2 * LOOP_S + 5)
        record.detection_kept = True
        workers = {e["worker_id"] for e in scene.delivered_for("flagged-b", killed)}
        assert victim not in workers, workers
        record.saw("a kill on flagged-b from the new worker process")
        scene.wait_detected_after(killed, ["flagged-a"], LOOP_S + 5)
        problems = scene.disturbed(["flagged-a", "clean"], before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert not problems, problems
        record.saw("worker 0's streams watched throughout, its kills delivered")
        assert scene.service.get("/readyz")["ready"]
    log = scene.service.log()
    assert "worker process 1 exited (code -9); restarting" in log
    record.saw("log: `worker process 1 exited (code -9); restarting`")
    assert scene.exit_code == 0
