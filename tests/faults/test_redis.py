"""Redis, the blocklist store, crashes (kill -9) and comes back: matching goes on with the
blocklist already loaded, and the worker resyncs from its position."""

import time
from typing import Any

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
CONNECTED = 'streamguard_connected{service="redis"}'


def saw_redis_lost_and_back(scene: Scene, record: Any) -> None:
    """The log says Redis was lost, why, and that it is back in sync."""
    error = scene.logged(r"blocklist: Redis unavailable \((.*?)\); keeping the loaded entries")
    assert "Redis is back; in sync" in scene.service.log()
    record.saw(f"log: `blocklist: Redis unavailable ({error}) …`, then `Redis is back; in sync`")


def test_redis_killed_and_restarted(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "Redis killed (kill -9) for a flagged frame, then restarted"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        flagged = scene.flagged
        scene.before_flagged(1.5)
        before = scene.streams()
        killed = time.time()
        redis.kill()
        scene.service.wait_for(lambda: scene.metric(CONNECTED) == 0, 10, "Redis seen as gone")
        record.saw(f"`{CONNECTED}` 0 within {time.time() - killed:.1f} s")
        # No Redis: the flagged frames shown now are matched against the loaded blocklist.
        detected_s = scene.wait_detected_after(killed, flagged, LOOP_S + 5)
        record.detection_kept = True
        record.saw(f"kept matching: kills for frames shown {detected_s:.1f} s into the outage")
        redis.start()  # on the same port, with its AOF
        restarted = time.time()
        scene.service.wait_for(lambda: scene.metric(CONNECTED) == 1, 20, "Redis back")
        record.saw(f"back in sync {time.time() - restarted:.1f} s after the restart")
        problems = scene.disturbed([*flagged, "clean"], before)
        record.others_unaffected = not problems
        scene.conclude(record)
        status = scene.service.get("/readyz")["blocklist"][0]
        assert status["connected"] and status["reloads"] == 0 and status["entries"] == 12
        assert not problems, problems
    saw_redis_lost_and_back(scene, record)
    assert scene.exit_code == 0
