"""Incident mode end to end (docs/incidents.md): real redis-server, nginx-rtmp, a `run`
process and the `streamguard incident` command, on benign footage (the clean sample clip).

Stream ``a`` shows the footage; ``b`` shows the same footage encoded otherwise (640x360,
crf 35, a keyframe every second, FLV). Nothing in the blocklist matches either. An
incident opened on ``a`` kills ``a`` and makes ``b`` match.
"""

import csv
import io
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from ..support.cli import streamguard
from ..support.mosquitto import Mosquitto
from ..support.redis import RedisServer
from ..support.reencode import reencoded
from ..support.service import Service
from ..support.subscriber import Subscriber as MqttSubscriber
from ..support.subscriber import mosquitto_pub
from .conftest import NginxRtmp, publishing
from .test_cluster import SECRET, cluster_config, start
from .test_run import CLEAN, FAST_RETRIES
from .test_run_redis import add_image

pytestmark = pytest.mark.integration
DECIDED_WITHIN_S = 2.0  # issue 17's target, from `incident open` returning


@pytest.fixture(scope="module")
def other_encoding(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("incident")
    return reencoded(CLEAN, directory / "clean_360p_gop1.flv", 640, 360, gop=30, crf=35)


def start_run(tmp_path: Path, redis: RedisServer, streams: dict[str, str]) -> Service:
    """``a`` sampled every half second (its ring is what an incident takes), the others
    in the default mode; kills do not stop the other streams being watched."""
    config = tmp_path / "streamguard.toml"
    tables = "".join(
        f'\n[[streams]]\nid = "{i}"\nurl = "{url}"\n'
        + ('sample = "interval:0.5"\n' if i == "a" else "")
        for i, url in streams.items()
    )
    policy = "[policy]\nkeep_watching_after_kill = true\nincident_gap_s = 5\n"
    config.write_text(f"processes = 1\n[redis]\ntimeout_s = 1\n{FAST_RETRIES}{policy}{tables}")
    return Service(["--config", str(config), "--redis", redis.url], tmp_path / "run.log")


def incident(redis: RedisServer, *args: str) -> subprocess.CompletedProcess:
    return streamguard("incident", *args, "--redis", redis.url, timeout_s=60)


def seconds_of(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_incident_kills_its_stream_and_protects_the_others(
    redis: RedisServer, nginx_rtmp: NginxRtmp, other_encoding: Path, tmp_path
):
    add_image(redis, "flagged_02")  # a list the footage does not match
    url_a, url_b = nginx_rtmp.rtmp_url("a-key"), nginx_rtmp.rtmp_url("b-key")
    with (
        publishing(CLEAN, [url_a], loop=True),
        publishing(other_encoding, [url_b], loop=True),
    ):
        service = start_run(tmp_path, redis, {"a": url_a, "b": url_b})
        try:
            service.wait_for(
                lambda: service.streams()["a"]["frames_sampled"] >= 30, 40, "15 s of a"
            )
            assert not service.events

            unwatched = incident(redis, "open", "nobody")
            assert unwatched.returncode == 2
            assert "no worker watches stream 'nobody'" in unwatched.stderr

            opened = incident(redis, "open", "a", "--seconds", "60", "--label", "drill")
            returned_at = time.time()
            assert opened.returncode == 0, opened.stderr + service.log()
            incident_id = opened.stdout.strip()
            listed = f"incident-{incident_id}"

            def decided_b() -> list[dict]:
                return [
                    e
                    for e in service.events
                    if e["stream_id"] == "b" and e.get("match", {}).get("list") == listed
                ]

            event_b = service.wait_for(decided_b, 10, "b decided on the incident")[0]
            decided_after_s = seconds_of(event_b["detected_at"]) - returned_at
            print(f"b decided {decided_after_s:.3f} s after incident open returned")
            assert event_b["action"] == "kill"
            assert decided_after_s <= DECIDED_WITHIN_S

            (event_a,) = [e for e in service.events if e["stream_id"] == "a"]
            assert event_a["reason"] == "incident" and event_a["action"] == "kill"
            assert event_a["incident"] == {"id": incident_id, "list": listed}
            assert service.streams()["a"]["state"] == "killed"

            exported = incident(redis, "export", incident_id)
            assert exported.returncode == 0, exported.stderr
            signal = incident(redis, "export", incident_id, "--format", "vpdq")
            assert signal.returncode == 0, signal.stderr
            (record,) = [
                json.loads(line) for line in incident(redis, "list", "--json").stdout.splitlines()
            ]

            closed = incident(redis, "close", incident_id)
            assert closed.returncode == 0, closed.stderr
            time.sleep(1.5)  # propagation
            seen = len(decided_b())
            frames = service.streams()["b"]["frames_sampled"]
            service.wait_for(
                lambda: service.streams()["b"]["frames_sampled"] >= frames + 12,
                20,
                "a whole loop of b watched after the close",
            )
            assert len(decided_b()) == seen
            assert incident(redis, "export", incident_id).returncode == 2  # entries gone
            metrics = service.metrics()
        finally:
            assert service.stop() == 0, service.log()

    assert record["id"] == incident_id and record["stream"] == "a" and record["state"] == "open"
    assert record["action"] == "kill" and record["label"] == "drill"
    assert metrics['streamguard_incidents_total{action="open",result="opened"}'] == 1.0

    # The streamguard CSV imports again to the same entries.
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == record["entries"] > 10
    assert {row["list"] for row in rows} == {row["video"] for row in rows} == {listed}
    assert all(int(row["quality"]) >= 50 for row in rows)
    assert [float(row["ts"]) for row in rows] == sorted(float(row["ts"]) for row in rows)
    path = tmp_path / "incident.csv"
    path.write_text(exported.stdout)
    other = ["--redis", redis.url, "--redis-prefix", "reimport:"]
    imported = streamguard("blocklist", "import", str(path), *other)
    assert imported.returncode == 0, imported.stderr
    again = streamguard("blocklist", "export", *other)
    reread = [
        {key: row[key] for key in rows[0]} for row in csv.DictReader(io.StringIO(again.stdout))
    ]
    assert sorted(reread, key=lambda row: row["id"]) == rows

    # The vPDQ signal parses back to the same frames (timestamps to 3 significant digits).
    kind, _, frames = signal.stdout.strip().partition(" ")
    assert kind == "vpdq"
    parsed = [item.split(",") for item in json.loads(frames)]
    assert [(h, int(q)) for h, q, _ in parsed] == [(r["hash"], int(r["quality"])) for r in rows]
    for (_, _, ts), row in zip(parsed, rows, strict=True):
        assert float(ts) == pytest.approx(float(row["ts"]), rel=5e-3, abs=1e-3)

    log = service.log()
    assert f"incident {incident_id} opened on stream a by cli" in log
    assert "a-key" not in log and "b-key" not in log  # URLs only with their keys hidden
    for row in rows:
        assert row["hash"] not in log


def test_control_topic_opens_and_closes_an_incident(
    redis: RedisServer, mosquitto: Mosquitto, nginx_rtmp: NginxRtmp, tmp_path
):
    add_image(redis, "flagged_02")
    url = nginx_rtmp.rtmp_url("cam-key")
    extra = f'[mqtt]\nurl = "{mosquitto.url()}"\n[[streams]]\nid = "cam"\nurl = "{url}"\n'
    config = cluster_config(tmp_path, "a", redis, extra)
    topic = "streamguard/v1/control/incidents"

    def command(**fields) -> None:
        mosquitto_pub(mosquitto.port, topic, json.dumps(fields))

    with publishing(CLEAN, [url], loop=True), MqttSubscriber(mosquitto.port) as subscriber:
        service = start(tmp_path, "a", config)
        try:
            service.wait_for(
                lambda: service.streams()["cam"]["frames_sampled"] >= 4, 30, "cam watched"
            )
            mosquitto_pub(mosquitto.port, topic, "{not json")
            command(action="incident", stream="cam", secret="wrong")
            command(action="incident", stream="cam", seconds="all", secret=SECRET)
            command(action="incident", stream="cam", incident_action="review", secret=SECRET)
            kill = service.wait_for(lambda: subscriber.on("kill", "cam"), 15, "cam killed")
            event = kill[0].json()
            assert event["reason"] == "incident"
            incident_id = event["incident"]["id"]
            (record,) = incidents_listed(redis)
            assert (record["id"], record["action"], record["state"]) == (
                incident_id,
                "review",
                "open",
            )

            command(action="incident_close", incident=incident_id, secret=SECRET)
            service.wait_for(lambda: incidents_listed(redis)[0]["state"] == "closed", 15, "closed")
            metrics = service.metrics()
        finally:
            assert service.stop() == 0, service.log()
    counted = {
        ("unknown", "invalid"): 1.0,
        ("incident", "unauthorized"): 1.0,
        ("incident", "invalid"): 1.0,
        ("incident", "ok"): 1.0,
        ("incident_close", "ok"): 1.0,
    }
    for (action, result), count in counted.items():
        labels = f'action="{action}",result="{result}",source="mqtt"'
        assert metrics[f"streamguard_control_commands_total{{{labels}}}"] == count, labels
    assert metrics['streamguard_incidents_total{action="close",result="closed"}'] == 1.0
    log = service.log()
    assert log.count("mqtt incident command refused") == 3
    assert f"incident {incident_id} opened on stream cam by mqtt" in log
    assert "cam-key" not in log and SECRET not in log


def incidents_listed(redis: RedisServer) -> list[dict]:
    listed = incident(redis, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]
