"""The media server crashes (kill -9 of nginx-rtmp, master and workers) and comes back;
the encoders reconnect by themselves, and so does every stream's reader."""

import time
from collections.abc import Callable
from typing import Any

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration


def reconnects(metrics: dict[str, float]) -> dict[str, float]:
    prefix = 'streamguard_reconnects_total{reason="'
    return {k[len(prefix) : -2]: v for k, v in metrics.items() if k.startswith(prefix)}


def saw_reconnects(scene: Scene, counted: dict[str, float], record: Any) -> None:
    """Note the reconnects counted since ``counted`` (``reconnects()`` then), by reason;
    there must be some."""
    moved = {
        reason: int(n - counted.get(reason, 0))
        for reason, n in reconnects(scene.metrics()).items()
        if n > counted.get(reason, 0)
    }
    assert moved, "no reconnect counted"
    record.saw(
        "`streamguard_reconnects_total` "
        + ", ".join(f'{{reason="{reason}"}} +{n}' for reason, n in sorted(moved.items()))
    )


def saw_watched_again(
    scene: Scene,
    record: Any,
    since: float,
    after: str,
    counted: dict[str, float],
    also: Callable[[str, dict[str, Any]], bool],
) -> None:
    """The media server answers again (at ``since``, ``after`` names it): every stream is
    watched again within 15 s, with ``also`` (stream id, state) true; a kill delivered for
    a flagged frame shown since; reconnects counted since ``counted``; then the checks
    every fault ends with."""
    scene.service.wait_for(
        lambda: all(s["state"] == "watching" and also(n, s) for n, s in scene.streams().items()),
        15,
        "every stream watched again",
    )
    record.saw(f"all watched again {time.time() - since:.1f} s after {after}")
    detected_s = scene.wait_detected_after(since, scene.flagged, 2 * LOOP_S + 5)
    record.detection_kept = True
    record.saw(f"kills for flagged frames shown {detected_s:.1f} s after {after}")
    saw_reconnects(scene, counted, record)
    scene.conclude(record)


def test_nginx_killed_and_restarted(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "nginx-rtmp killed (kill -9), restarted; encoders reconnect"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        names = list(scene.encoders)
        # 2 s after a flagged frame: the restarted broadcasts show theirs more than
        # incident_gap_s (5 s) later, so each is a new incident, not the one before.
        scene.before_flagged(LOOP_S - 2)
        before, counted = scene.streams(), reconnects(scene.metrics())
        killed = time.time()
        nginx.kill()
        scene.service.wait_for(
            lambda: all(s["state"] != "watching" for s in scene.streams().values()),
            10,
            "every stream seen as lost",
        )
        record.saw(f"all {len(names)} streams left `watching` within {time.time() - killed:.1f} s")
        nginx.start()  # same ports; the encoders publish again within half a second
        saw_watched_again(
            scene,
            record,
            time.time(),
            "the restart",
            counted,
            also=lambda n, s: s["frames_sampled"] > before[n]["frames_sampled"],
        )
    log = scene.service.log()
    for name in scene.encoders:
        assert f"stream {name} (rtmp://127.0.0.1:{nginx.rtmp_port}/live/***): ended" in log
    record.saw("log: `stream ID (URL): ended`, then `watching`, for each stream")
    assert scene.exit_code == 0
