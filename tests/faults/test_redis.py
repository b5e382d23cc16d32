"""Redis, the blocklist store, crashes (kill -9) and comes back: matching goes on with the
blocklist already loaded, and the worker resyncs from its position."""

import time
from collections.abc import Callable
from typing import Any

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
CONNECTED = 'streamguard_connected{service="redis"}'


def redis_unavailable(
    scene: Scene,
    record: Any,
    away: Callable[[], None],
    back: Callable[[], None],
    *,
    during: str,
    after: str,
) -> None:
    """Redis goes ``away`` just before a flagged frame, then comes ``back`` (``during``
    names the time between, ``after`` the return): the service notices within 10 s, keeps
    matching with the blocklist it has loaded, is connected again within 20 s; the other
    streams are undisturbed; then the checks every fault ends with."""
    scene.before_flagged(1.5)
    before = scene.streams()
    gone = time.time()
    away()
    try:
        scene.service.wait_for(lambda: scene.metric(CONNECTED) == 0, 10, "Redis seen as gone")
        record.saw(f"`{CONNECTED}` 0 within {time.time() - gone:.1f} s")
        # No Redis: the flagged frames shown now are matched against the loaded blocklist.
        detected_s = scene.wait_detected_after(gone, scene.flagged, LOOP_S + 5)
        record.detection_kept = True
        record.saw(f"kept matching: kills for frames shown {detected_s:.1f} s into the {during}")
    finally:
        back()
    returned = time.time()
    scene.service.wait_for(lambda: scene.metric(CONNECTED) == 1, 20, "Redis back")
    record.saw(f"`{CONNECTED}` 1: back in sync {time.time() - returned:.1f} s after {after}")
    problems = scene.disturbed([*scene.flagged, "clean"], before)
    record.others_unaffected = not problems
    scene.conclude(record)
    assert not problems, problems


def saw_redis_lost_and_back(scene: Scene, record: Any) -> None:
    """The log says Redis was lost, why, and that it is back in sync."""
    error = scene.logged(r"blocklist: Redis unavailable \((.*?)\); keeping the loaded entries")
    assert "Redis is back; in sync" in scene.service.log()
    record.saw(f"log: `blocklist: Redis unavailable ({error}) …`, then `Redis is back; in sync`")


def test_redis_killed_and_restarted(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "Redis killed (kill -9) for a flagged frame, then restarted"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        # Restarted on the same port, with its AOF.
        redis_unavailable(
            scene, record, redis.kill, redis.start, during="outage", after="the restart"
        )
        status = scene.service.get("/readyz")["blocklist"][0]
        assert status["connected"] and status["reloads"] == 0 and status["entries"] == 12
    saw_redis_lost_and_back(scene, record)
    assert scene.exit_code == 0
