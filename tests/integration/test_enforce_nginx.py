"""`streamguard enforce` against real nginx-rtmp and mosquitto, as a platform runs it.

A kill event drops the publisher through nginx-rtmp's control module and its key is
refused by the on_publish hook from then on, across restarts; duplicates cause one
drop; a kill sent while enforce is down is acted on when it starts. Its /metrics count
all of this and pass `promtool check metrics`.
"""

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest

from streamguard.cli import main
from streamguard.events.schema import rfc3339

from ..conftest import SAMPLES
from ..support.mosquitto import Mosquitto
from ..support.nginx import NginxRtmp, nginx_rtmp_server
from ..support.ports import free_port, wait_for_ports
from ..support.processes import stop
from .conftest import ffmpeg_publish

CLIP = SAMPLES / "clips" / "clean_720p.mp4"
SECRET = "7f3c0d9e2b8a4f61"
EVENTS = "streamguard_enforce_events_total"
DROPPED = 'streamguard_enforce_drops_total{outcome="dropped"}'
REFUSED = 'streamguard_enforce_publishes_total{decision="refused"}'

pytestmark = pytest.mark.integration


def kill_event(stream_id: str, event_id: str) -> bytes:
    """A kill event as `streamguard run` publishes it (the stream key redacted), just
    detected."""
    now = time.time()
    event = {
        "schema": "streamguard.event.v1",
        "event_id": event_id,
        "action": "kill",
        "stream_id": stream_id,
        "stream_url": "rtmp://127.0.0.1/live/***",
        "detected_at": rfc3339(now),
        "latency_ms": 18,
        "frame": {"pts_s": 4.0, "received_at": rfc3339(now - 0.018), "width": 1280},
        "match": {"algo": "pdq", "distance": 0, "threshold": 31, "category": "test"},
        "confirmations": 1,
        "worker_id": "test/1",
    }
    return json.dumps(event).encode()


def send_kill(broker: Mosquitto, stream_id: str, event_id: str) -> None:
    topic = f"streamguard/v1/kill/{stream_id}"
    payload = kill_event(stream_id, event_id)
    mqtt_publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def samples(text: str) -> dict[str, float]:
    """Every sample of an exposition, as 'NAME{LABEL="VALUE"}' -> value."""
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {sample: float(value) for sample, value in lines}


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: install the Debian package prometheus", pytrace=False)
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


class Enforce:
    """A `streamguard enforce` process; /readyz shows its subscription, /metrics counts."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.port = port
        self.log_path = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamguard", "enforce", "--config", str(config)],
                stdout=output,
                stderr=output,
            )
        wait_for_ports(port, alive=lambda: self.process.poll() is None)
        wait_until(lambda: self.status()["ready"], 10, "enforce subscribed")

    def status(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:  # 503 until subscribed
            return json.loads(exc.read())

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
            return reply.read().decode()

    def metrics(self) -> dict[str, float]:
        return samples(self.scrape())

    def stop(self) -> int:
        return stop(self.process)


def config_file(tmp_path: Path, nginx: NginxRtmp, broker: Mosquitto, port: int) -> Path:
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    streams = {"cam": "cam-key", "cam2": "cam2-key", "other": "other-key"}
    tables = "".join(
        f'[[streams]]\nid = "{sid}"\nurl = "{nginx.rtmp_url(key)}"\n'
        for sid, key in streams.items()
    )
    path = tmp_path / "streamguard.toml"
    path.write_text(
        f'[mqtt]\nurl = "{broker.url()}"\n\n'
        "[enforce]\n"
        'adapter = "nginx-rtmp"\n'
        f'api_url = "{nginx.control_url}"\n'
        f'listen = "127.0.0.1:{port}"\n'
        'hook_secret_file = "hook-secret"\n'
        'state_file = "state/enforce.sqlite3"\n'
        "retry_initial_s = 0.2\n"
        "retry_max_s = 1\n\n" + tables
    )
    return path


def refused(nginx: NginxRtmp, key: str) -> bool:
    """Publish ``key`` once: True when nginx-rtmp turns the publisher away."""
    with ffmpeg_publish(CLIP, nginx.rtmp_url(key), loop=False) as publisher:
        code = publisher.wait(10)
        assert key not in nginx.published()
    return code != 0


def test_kill_drops_refuses_and_survives_restarts(mosquitto: Mosquitto, tmp_path):
    """One media server, one broker, enforce and the broker restarted once: about 5 s."""
    port = free_port()
    hook = f"http://127.0.0.1:{port}/on_publish?secret={SECRET}"
    log = tmp_path / "enforce.log"
    with nginx_rtmp_server(tmp_path / "nginx", hls=False, on_publish=hook) as nginx:
        config = config_file(tmp_path, nginx, mosquitto, port)
        enforce = Enforce(config, port, log)
        try:
            with (
                ffmpeg_publish(CLIP, nginx.rtmp_url("cam-key")) as cam,
                ffmpeg_publish(CLIP, nginx.rtmp_url("cam2-key")) as cam2,
            ):
                nginx.wait_published("cam-key", 10)
                nginx.wait_published("cam2-key", 10)

                # The same event twice, then another event for the same stream: one drop.
                send_kill(mosquitto, "cam", "event-1")
                send_kill(mosquitto, "cam", "event-1")
                send_kill(mosquitto, "cam", "event-2")
                wait_until(lambda: cam.poll() is not None, 10, "the publisher dropped")
                assert "cam-key" not in nginx.published()
                wait_until(
                    lambda: enforce.metrics()[f'{EVENTS}{{result="already_enforced"}}'],
                    5,
                    "all events handled",
                )
                text = enforce.scrape()
                promtool_check(text)
                metrics = samples(text)
                assert metrics[f'{EVENTS}{{result="kill"}}'] == 1 and metrics[DROPPED] == 1
                assert metrics[f'{EVENTS}{{result="duplicate"}}'] == 1
                assert metrics[f'{EVENTS}{{result="already_enforced"}}'] == 1
                assert metrics["streamguard_enforce_drop_failures_total"] == 0
                assert metrics["streamguard_enforce_kill_latency_seconds_count"] == 1
                assert metrics['streamguard_enforce_kill_latency_seconds_bucket{le="10.0"}'] == 1
                assert metrics["streamguard_enforce_denied_keys"] == 1
                assert metrics["streamguard_enforce_pending_drops"] == 0
                assert metrics["streamguard_enforce_connected"] == 1
                assert "streamguard_enforce_build_info{" in text
                assert "cam-key" not in text

                # The encoder reconnects: refused. Another key still publishes.
                assert refused(nginx, "cam-key")
                with ffmpeg_publish(CLIP, nginx.rtmp_url("other-key")):
                    nginx.wait_published("other-key", 10)
                assert enforce.metrics()[REFUSED] >= 1
                assert cam2.poll() is None

                # A kill sent while enforce is down waits at the broker (persistent session).
                assert enforce.stop() == 0
                send_kill(mosquitto, "cam2", "event-3")
                enforce = Enforce(config, port, log)
                wait_until(lambda: cam2.poll() is not None, 10, "the second publisher dropped")
                assert enforce.metrics()[DROPPED] == 1

            # The deny list survived the restart; other keys publish.
            assert refused(nginx, "cam-key") and refused(nginx, "cam2-key")
            with ffmpeg_publish(CLIP, nginx.rtmp_url("other-key")) as other:
                nginx.wait_published("other-key", 10)

                # The broker restarts: enforce reconnects by itself and acts on kills again.
                mosquitto.stop()
                wait_until(lambda: not enforce.status()["ready"], 10, "the broker missed")
                assert enforce.metrics()["streamguard_enforce_connected"] == 0
                mosquitto.start()
                wait_until(lambda: enforce.status()["ready"], 20, "enforce reconnected")
                send_kill(mosquitto, "other", "event-4")
                wait_until(lambda: other.poll() is not None, 10, "the third publisher dropped")
        finally:
            enforce.stop()
    text = log.read_text(errors="replace")
    assert "event event-1: ending stream 'cam' (live/***)" in text, text
    assert "cam-key" not in text and "cam2-key" not in text and SECRET not in text


@pytest.mark.parametrize(
    ("enforce_table", "problem"),
    [
        ('adapter = "nginx-rtmp"\napi_token = "x"\n', "enforce: unknown key(s) api_token"),
        ('adapter = "wowza"\napi_url = "http://127.0.0.1:1"\n', "enforce.adapter: expected one of"),
        ('adapter = "srs"\n', "enforce.api_url: expected"),
        (
            'adapter = "srs"\napi_url = "http://127.0.0.1:1"\nlisten = "0.0.0.0:9311"\n',
            "needs enforce.hook_secret_file",
        ),
        ('adapter = "srs"\napi_url = "http://127.0.0.1:1"\n', "no MQTT broker"),
    ],
)
def test_configuration_errors_are_one_line(enforce_table, problem, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STREAMGUARD_MQTT_URL", raising=False)
    path = tmp_path / "streamguard.toml"
    path.write_text(
        f'[enforce]\n{enforce_table}\n[[streams]]\nid = "cam"\nurl = "rtmp://m/live/cam-key"\n'
    )
    assert main(["enforce", "--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("streamguard: error: ") and problem in line and "cam-key" not in line
