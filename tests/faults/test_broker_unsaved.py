"""The broker killed (kill -9) right after it acknowledged kills it had not saved yet.

Mosquitto sends PUBACK before it saves (deploy/mosquitto.conf: every 1-2 s), and the
platform's subscriber is offline (as while enforce restarts), so the kills exist only in
the broker's memory when it dies. streamguard re-sends what the broker acknowledged in
the last ``resend_after_reconnect_s`` once it is back; the platform gets every kill.
"""

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..integration.conftest import _server
from ..support.mosquitto import Mosquitto, MosquittoUnavailable, deploy_persistence
from ..support.subscriber import Subscriber
from .scene import LOOP_S, PLATFORM, Scene, wait_until

pytestmark = pytest.mark.integration
RESENT = "streamguard_events_resent_total"
CONNECTED = 'streamguard_connected{service="mqtt"}'


@pytest.fixture
def deployed_mosquitto(request, tmp_path) -> Iterator[Mosquitto]:
    """mosquitto with deploy/mosquitto.conf's persistence and queue settings, on a test
    port and directory."""
    broker = Mosquitto(tmp_path / "mosquitto", persistence=deploy_persistence())

    class Started:
        def __enter__(self) -> Mosquitto:
            broker.start()
            return broker

        def __exit__(self, *exc_info: object) -> None:
            broker.stop()

    yield from _server(request, Started(), MosquittoUnavailable, lambda broker: broker.log)


def acked_since(outbox: Path, moment: float) -> list[str]:
    """Event ids the broker acknowledged after ``moment``, from the outbox's ledger."""
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT event_id FROM sent WHERE acked_at > ?", (moment,))
        return [event_id for (event_id,) in rows]


def test_broker_killed_with_acknowledged_events_unsaved(
    redis, deployed_mosquitto, nginx, tmp_path, record
):
    mosquitto = deployed_mosquitto
    record.fault = "MQTT broker killed (kill -9) right after acknowledging kills it had not saved"
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        flagged = scene.flagged
        outbox = tmp_path / "state" / "outbox-0.sqlite"
        scene.subscriber.close()  # the platform offline: the broker must queue its kills
        offline = time.time()
        acked = wait_until(
            lambda: len(found := acked_since(outbox, offline)) >= len(flagged) and found,
            LOOP_S + 10,
            "kills acknowledged while the platform was offline",
        )
        mosquitto.kill()  # within ~50 ms of the PUBACK: before the broker's next save
        killed = time.time()
        record.saw(
            f"{len(acked)} kills acknowledged (PUBACK, in the outbox's `sent` ledger) while the "
            "platform was offline; broker killed within 0.1 s"
        )
        mosquitto.start()  # from its last save: the kills acknowledged since are gone
        scene.service.wait_for(lambda: scene.metric(CONNECTED) == 1, 30, "connected again")
        record.saw(f"reconnected {time.time() - killed:.1f} s after the kill")
        # The platform back, in its persistent session; it keeps what it had received.
        scene.subscriber = Subscriber(
            mosquitto.port, "streamguard/v1/kill/+", PLATFORM, messages=scene.subscriber.messages
        )
        detected_s = scene.wait_detected_after(killed, flagged, 30)
        record.detection_kept = True
        scene.conclude(record)  # every kill decided is delivered: none lost with the broker
        resent = scene.logged(r"MQTT: reconnected: re-sent (\d+) events", last=True)
        record.saw(
            f"re-sent {resent} events acknowledged within 10 s before the last PUBACK "
            f"(`{RESENT}` {scene.metric(RESENT):.0f}; log: `MQTT: reconnected: re-sent "
            f"{resent} events …`); kills for frames shown {detected_s:.1f} s after the kill "
            "delivered"
        )
        assert scene.metric(RESENT) >= len(acked)
    assert scene.exit_code == 0
