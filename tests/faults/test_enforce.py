"""`streamguard enforce` killed (kill -9) between receiving a kill and storing it: the
broker still holds the kill, unacknowledged, and sends it again when enforce comes
back with the same client id; the stream is ended and its key refused.

The product has no test hook: the test holds an exclusive lock on enforce's state
file (``BEGIN EXCLUSIVE`` from its own SQLite connection), so enforce receives the
kill and cannot commit it. enforce waits for the lock (``BUSY_TIMEOUT_S``, 5 s),
gives up, logs the kill as not stored and not acknowledged, reconnects and gets it
again, and so on: the test kills it once that line shows the kill was received,
then releases the lock and starts enforce again with the same settings. With the
PUBACK sent on receipt (aiomqtt's default), the broker forgets the kill and the
stream airs on.
"""

import signal
import sqlite3
import time

import pytest

from ..integration.conftest import ffmpeg_publish
from ..integration.test_enforce_nginx import (
    CLIP,
    DROPPED,
    EVENTS,
    SECRET,
    Enforce,
    config_file,
    refused,
    send_kill,
    wait_until,
)
from ..support.nginx import nginx_rtmp_server
from ..support.ports import free_port

pytestmark = pytest.mark.integration
NOT_STORED = "could not be stored, so it is not acknowledged"
STORE_FAILURES = "streamguard_enforce_store_failures_total"


def test_enforce_killed_between_receipt_and_commit(mosquitto, tmp_path, record):
    record.fault = "`enforce` killed (kill -9) between receiving a kill and storing it"
    record.detection_applies = False
    port = free_port()
    hook = f"http://127.0.0.1:{port}/on_publish?secret={SECRET}"
    log = tmp_path / "enforce.log"
    with nginx_rtmp_server(tmp_path / "nginx", hls=False, on_publish=hook) as nginx:
        config = config_file(tmp_path, nginx, mosquitto, port)
        enforce = Enforce(config, port, log)
        try:
            with ffmpeg_publish(CLIP, nginx.rtmp_url("cam-key")) as cam:
                nginx.wait_published("cam-key", 30)
                holder = sqlite3.connect(tmp_path / "state" / "enforce.sqlite3", timeout=0)
                holder.isolation_level = None
                holder.execute("BEGIN EXCLUSIVE")
                sent = time.monotonic()
                send_kill(mosquitto, "cam", "fault-1")
                record.events_decided = 1
                wait_until(lambda: NOT_STORED in log.read_text(), 60, "the kill received")
                record.saw(
                    f"the kill received, its commit refused (state file locked); "
                    f"`{STORE_FAILURES}` +1 and the log line '… {NOT_STORED} …'"
                )
                enforce.process.send_signal(signal.SIGKILL)
                assert enforce.process.wait(30) == -signal.SIGKILL
                assert cam.poll() is None, "the stream was ended before the crash"
                holder.execute("ROLLBACK")
                holder.close()

                enforce = Enforce(config, port, log)  # the same client id: the same session
                wait_until(lambda: cam.poll() is not None, 60, "the publisher dropped")
                record.saw(
                    f"killed with the kill unacknowledged; sent again by the broker on "
                    f"restart: stream ended {time.monotonic() - sent:.1f} s after the kill"
                )
                metrics = enforce.metrics()
                assert metrics[f'{EVENTS}{{result="kill"}}'] == 1 and metrics[DROPPED] == 1
                assert metrics[STORE_FAILURES] == 0
                record.events_delivered, record.events_lost = 1, 0
            assert refused(nginx, "cam-key")
            record.saw("its key refused after the restart")

            # Acknowledged once stored: the broker has nothing more for enforce.
            assert enforce.stop() == 0
            enforce = Enforce(config, port, log)
            time.sleep(2)  # a message left in the session comes right after the CONNACK
            metrics = enforce.metrics()
            assert sum(v for k, v in metrics.items() if k.startswith(EVENTS)) == 0, metrics
            record.duplicates = 0
        finally:
            enforce.stop()
    text = log.read_text(errors="replace")
    assert text.count("event fault-1: ending stream 'cam' (live/***)") == 1, text
    assert "cam-key" not in text
