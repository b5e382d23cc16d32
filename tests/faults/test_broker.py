"""The MQTT broker crashes (kill -9) while kills are being decided: they wait in the
outbox and are delivered once it is back; the platform's persistent session gets them."""

import time

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
CONNECTED = 'streamguard_connected{service="mqtt"}'
FAILURES = "streamguard_publish_failures_total"
WAITING = "streamguard_outbox_events"


def test_broker_killed_and_restarted(redis, mosquitto, nginx, tmp_path, record):
    record.fault = "MQTT broker killed (kill -9) for a flagged frame, then restarted"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        flagged = scene.flagged
        scene.before_flagged(1.5)
        before, failures = scene.streams(), scene.metric(FAILURES)
        decided = len(scene.decided())
        killed = time.time()
        mosquitto.kill()
        scene.service.wait_for(lambda: scene.metric(CONNECTED) == 0, 10, "the broker seen as gone")
        record.saw(f"`{CONNECTED}` 0 within {time.time() - killed:.1f} s")
        # Detection goes on; the kills wait in the outbox.
        scene.service.wait_for(
            lambda: len(scene.decided()) >= decided + len(flagged), LOOP_S + 5, "kills decided"
        )
        waiting = scene.service.wait_for(lambda: scene.metric(WAITING), 5, "kills in the outbox")
        record.saw(f"kept detecting: {waiting:.0f} kills decided meanwhile wait in the outbox")
        mosquitto.start()  # same port, its persistence file: the platform's session is back
        restarted = time.time()
        detected_s = scene.wait_detected_after(killed, flagged, 30)
        record.detection_kept = True
        record.saw(
            f"reconnected and delivered them {time.time() - restarted:.1f} s after the restart "
            f"(frames shown {detected_s:.1f} s into the outage)"
        )
        scene.service.wait_for(lambda: scene.metric(CONNECTED) == 1, 10, "connected again")
        failed = scene.metric(FAILURES) - failures
        assert failed >= 1
        record.saw(f"`{FAILURES}` +{failed:.0f}")
        problems = scene.disturbed([*flagged, "clean"], before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert scene.metric(WAITING) == 0
        assert not problems, problems
    error = scene.logged(r"MQTT: \S+ unavailable \((.*?)\); \d+ events kept in the outbox")
    waited = scene.logged(r"MQTT: connected to .*; (\d+ events waiting)", last=True)
    record.saw(f"log: `MQTT: URL unavailable ({error}); …`, then `connected …; {waited}`")
    assert scene.exit_code == 0
