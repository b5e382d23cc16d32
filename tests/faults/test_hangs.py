"""A component hangs (SIGSTOP) for longer than the timeouts, then resumes (SIGCONT): the
connection is given up on at its timeout instead of blocking anything, and taken up
again once the component answers."""

import signal
import time

import pytest

from .scene import LOOP_S, Scene
from .test_nginx import reconnects, saw_watched_again
from .test_redis import redis_unavailable, saw_redis_lost_and_back

pytestmark = pytest.mark.integration


def pause(process) -> None:
    process.send_signal(signal.SIGSTOP)


def resume(process) -> None:
    process.send_signal(signal.SIGCONT)


def test_redis_hangs(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "Redis hangs (SIGSTOP) for a flagged frame, then resumes (SIGCONT)"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        redis_unavailable(
            scene,
            record,
            lambda: pause(redis.process),
            lambda: resume(redis.process),
            during="hang",
            after="SIGCONT",
        )
    saw_redis_lost_and_back(scene, record)
    assert scene.exit_code == 0


def test_broker_hangs(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "MQTT broker hangs (SIGSTOP) for a flagged frame, then resumes (SIGCONT)"
    connected = 'streamguard_connected{service="mqtt"}'
    failures = "streamguard_publish_failures_total"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        flagged = scene.flagged
        scene.before_flagged(1.5)
        before, failed = scene.streams(), scene.metric(failures)
        paused = time.time()
        pause(mosquitto.process)
        try:
            # The kills decided now get no PUBACK: given up after `timeout_s = 2`.
            scene.service.wait_for(lambda: scene.metric(connected) == 0, LOOP_S, "broker given up")
            record.saw(f"gave the broker up {time.time() - paused:.1f} s into the hang")
            waiting = scene.service.wait_for(
                lambda: scene.metric("streamguard_outbox_events"), 5, "kills in the outbox"
            )
            record.saw(f"kept detecting: {waiting:.0f} kills wait in the outbox")
        finally:
            resume(mosquitto.process)
        resumed = time.time()
        detected_s = scene.wait_detected_after(paused, flagged, 30)
        record.detection_kept = True
        scene.service.wait_for(lambda: scene.metric(connected) == 1, 20, "connected again")
        record.saw(
            f"reconnected, delivered {time.time() - resumed:.1f} s after SIGCONT "
            f"(frames shown {detected_s:.1f} s into the hang)"
        )
        record.saw(f"`{connected}` 0 then 1, `{failures}` +{scene.metric(failures) - failed:.0f}")
        problems = scene.disturbed([*flagged, "clean"], before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert scene.metric(failures) > failed
        assert not problems, problems
    error = scene.logged(r"MQTT: \S+ unavailable \((.*?)\); \d+ events kept in the outbox")
    record.saw(f"log: `MQTT: URL unavailable ({error}); N events kept in the outbox; retrying`")
    assert scene.exit_code == 0


def test_nginx_hangs(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "nginx-rtmp hangs (SIGSTOP), then resumes (SIGCONT)"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        before, counted = scene.streams(), reconnects(scene.metrics())
        paused = time.time()
        nginx.pause()
        try:
            # Nothing arrives: each reader gives up at `read_timeout_s = 2`, and reopening
            # times out at `open_timeout_s = 4`.
            scene.service.wait_for(
                lambda: all(s["state"] == "reconnecting" for s in scene.streams().values()),
                10,
                "every stream given up",
            )
            record.saw(f"all streams `reconnecting` {time.time() - paused:.1f} s into the hang")
            time.sleep(4)  # hang past the open timeout too
        finally:
            nginx.resume()
        saw_watched_again(
            scene, record, time.time(), "SIGCONT", counted, also=lambda _, s: s["connects"] >= 2
        )
        assert all(
            s["frames_sampled"] > before[n]["frames_sampled"] for n, s in scene.streams().items()
        )
    log = scene.service.log()
    assert "reconnecting: " in log and "nothing received for" in log
    record.saw("log: `stream ID (URL): reconnecting: … nothing received for 2.0 s`")
    assert scene.exit_code == 0
