"""`streamguard run --mqtt` against real mosquitto and nginx-rtmp: events a platform receives."""

import signal
import time
from pathlib import Path

import jsonschema
import pytest

from streamguard.events.outbox import Outbox
from streamguard.events.schema import json_schema

from ..support.mosquitto import Mosquitto
from ..support.service import Service
from ..support.subscriber import Subscriber
from .conftest import NginxRtmp, publishing
from .test_run import BLOCKLIST, CLEAN, FAST_RETRIES, FLAGGED_720

pytestmark = pytest.mark.integration
VALIDATOR = jsonschema.Draft202012Validator(
    json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def start_run(
    tmp_path: Path, broker: Mosquitto, streams: dict[str, str], extra: str = ""
) -> Service:
    config = tmp_path / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{url}"\n' for i, url in streams.items())
    config.write_text(
        f'processes = 1\nstate_dir = "state"\n[blocklist]\nfiles = ["{BLOCKLIST}"]\n'
        f"[mqtt]\ntimeout_s = 2\n{extra}{FAST_RETRIES}{tables}"
    )
    return Service(["--config", str(config), "--mqtt", broker.url()], tmp_path / "run.log")


def test_subscriber_gets_a_valid_kill_for_flagged_and_nothing_for_clean(
    mosquitto: Mosquitto, nginx_rtmp: NginxRtmp, tmp_path
):
    flagged, clean = nginx_rtmp.rtmp_url("flagged"), nginx_rtmp.rtmp_url("clean")
    with (
        Subscriber(mosquitto.port) as subscriber,
        publishing(FLAGGED_720, [flagged], loop=True),
        publishing(CLEAN, [clean], loop=True),
    ):
        service = start_run(tmp_path, mosquitto, {"flagged": flagged, "clean": clean})
        try:
            service.wait_for(lambda: subscriber.on("kill", "flagged"), 30, "a kill event")
            service.wait_for(
                lambda: service.streams()["clean"]["frames_sampled"] >= 6, 20, "a loop of clean"
            )
            (kill,) = subscriber.on("kill")  # one incident, one event; none for the clean stream
            event = kill.json()
            VALIDATOR.validate(event)
            assert event["action"] == "kill" and event["stream_url"].endswith("/live/***")
            assert event["match"]["category"] == "test" and event["confirmations"] == 1
            assert not subscriber.on("review")
            assert service.streams()["flagged"]["state"] == "killed"
            states = [m.json()["state"] for m in subscriber.on("status", "flagged")]
            assert states[-1] == "killed" and "watching" in states
        finally:
            assert service.stop() == 0, service.log()
    # A platform that connects later learns every stream's last state from retained messages.
    with Subscriber(mosquitto.port, "streamguard/v1/status/+") as late:
        deadline = time.monotonic() + 5
        while len(late.on("status")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert {m.topic.rsplit("/", 1)[1]: m.json()["state"] for m in late.on("status")} == {
        "flagged": "killed",
        "clean": "stopped",
    }
    assert all(m.retained for m in late.on("status"))


def test_broker_down_at_detection_time_event_arrives_after_restart(
    mosquitto: Mosquitto, nginx_rtmp: NginxRtmp, tmp_path
):
    url = nginx_rtmp.rtmp_url("cam")
    subscriber = Subscriber(mosquitto.port, client_id="platform")  # persistent session
    service = start_run(tmp_path, mosquitto, {"cam": url})
    try:
        service.wait_for(lambda: service.get("/readyz")["ready"], 20, "connected to the broker")
        subscriber.close()
        mosquitto.kill()  # kill -9, before anything is detected
        with publishing(FLAGGED_720, [url], loop=True):
            service.wait_for(
                lambda: service.streams()["cam"]["state"] == "killed", 30, "a detection"
            )
        waiting = Outbox(tmp_path / "state" / "outbox-0.sqlite")
        assert len(waiting) == 1  # decided, committed, not yet delivered
        waiting.close()
        mosquitto.start()
        subscriber = Subscriber(mosquitto.port, client_id="platform")
        service.wait_for(lambda: subscriber.on("kill", "cam"), 30, "the kill after the restart")
        service.wait_for(lambda: len(subscriber.messages) >= 2, 3, "anything else")
        ids = {m.json()["event_id"] for m in subscriber.on("kill")}
        assert len(ids) == 1  # exactly one per incident once deduplicated by event_id
    finally:
        assert service.stop() == 0, service.log()
        subscriber.close()


def test_outbox_survives_a_kill_9_of_streamguard(
    mosquitto: Mosquitto, nginx_rtmp: NginxRtmp, tmp_path
):
    url = nginx_rtmp.rtmp_url("cam")
    mosquitto.kill()  # the broker is away while the kill is decided
    service = start_run(tmp_path, mosquitto, {"cam": url})
    with publishing(FLAGGED_720, [url], loop=True):
        service.wait_for(lambda: service.streams()["cam"]["state"] == "killed", 30, "a kill")
    service.process.send_signal(signal.SIGKILL)
    service.stop()
    outbox = Outbox(tmp_path / "state" / "outbox-0.sqlite")
    assert len(outbox) == 1
    outbox.close()

    mosquitto.start()
    subscriber = Subscriber(mosquitto.port, "streamguard/v1/kill/+")
    restarted = start_run(tmp_path, mosquitto, {"cam": url})
    try:
        restarted.wait_for(lambda: subscriber.on("kill", "cam"), 20, "the kill from before")
        assert "1 events from before the restart to deliver" in restarted.log()
    finally:
        assert restarted.stop() == 0, restarted.log()
        subscriber.close()
    outbox = Outbox(tmp_path / "state" / "outbox-0.sqlite")
    assert len(outbox) == 0
    outbox.close()
