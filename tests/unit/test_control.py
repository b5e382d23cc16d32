"""Control commands are checked before anything reaches Redis: pure logic, no servers."""

import asyncio
import json

import pytest
from prometheus_client import REGISTRY

from streamguard.blocklist.store import RedisSettings
from streamguard.config import ClusterSettings, ControlSettings, Settings
from streamguard.observability.http import Request
from streamguard.runtime.control import ControlPlane, Refused

SECRET = "s3cret"


@pytest.fixture
def plane() -> ControlPlane:
    settings = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1"),  # never reached by these tests
        cluster=ClusterSettings(enabled=True),
        control=ControlSettings(pull_url="rtmp://media:1935/{app}/{name}"),
    )
    return ControlPlane(settings, SECRET)


def counted(source: str, action: str, result: str) -> float:
    labels = {"source": source, "action": action, "result": result}
    return REGISTRY.get_sample_value("streamguard_control_commands_total", labels) or 0.0


@pytest.mark.parametrize(
    ("payload", "action", "result", "reason"),
    [
        (b"{not json", "unknown", "invalid", "not JSON"),
        (b"[1]", "unknown", "invalid", "JSON object"),
        (
            json.dumps({"action": "start", "url": "rtmp://m/a/b"}).encode(),
            "start",
            "unauthorized",
            "secret",
        ),
        (
            json.dumps({"action": "start", "url": "rtmp://m/a/b", "secret": "guess"}).encode(),
            "start",
            "unauthorized",
            "secret",
        ),
        (
            json.dumps({"action": "pause", "secret": SECRET}).encode(),
            "unknown",
            "invalid",
            "expected 'start' or 'stop'",
        ),
        (
            json.dumps({"action": "start", "url": "file:///etc/passwd", "secret": SECRET}).encode(),
            "start",
            "invalid",
            "not enabled",
        ),
        (
            json.dumps({"action": "start", "url": 5, "secret": SECRET}).encode(),
            "start",
            "invalid",
            "url must be a string",
        ),
        (
            json.dumps({"action": "stop", "secret": SECRET, "extra": 1}).encode(),
            "stop",
            "invalid",
            "unknown key(s) 'extra'",
        ),
        (b"x" * 20_000, "unknown", "invalid", "larger than"),
    ],
)
def test_a_bad_command_is_refused_counted_and_explained(
    plane, caplog, payload, action, result, reason
):
    before = counted("mqtt", action, result)
    asyncio.run(plane.on_message("cam1", payload))
    assert counted("mqtt", action, result) == before + 1
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert reason in line and SECRET not in line


def test_a_stream_id_from_the_topic_is_validated(plane):
    with pytest.raises(Refused, match="stream id"):
        plane.command("bad id!", "start", "rtmp://media/live/key")


def test_a_published_stream_is_named_without_its_key(plane):
    command = plane._published("start", "live", "secret-key-123")
    assert command.stream.id.startswith("live-") and "secret" not in command.stream.id
    assert command.stream.url == "rtmp://media:1935/live/secret-key-123"
    again = plane._published("stop", "live", "secret-key-123")
    assert again.stream.id == command.stream.id  # publish_done finds the same stream


def test_nginx_rtmp_hook_needs_the_secret_and_a_known_call(plane):
    def post(query: dict[str, str], body: str):
        request = Request("/control/nginx-rtmp", query, {}, body.encode(), "127.0.0.1")
        return asyncio.run(plane.webhooks()["/control/nginx-rtmp"](request))

    assert post({}, "call=publish&app=live&name=k").status == 403
    assert post({"secret": SECRET}, "call=play&app=live&name=k").status == 400
    assert post({"secret": SECRET}, "call=publish&app=live").status == 400


def test_a_bad_template_is_a_clear_refusal():
    settings = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1"),
        control=ControlSettings(stream_id="{app}-{channel}"),
    )
    with pytest.raises(Refused, match="bad template"):
        ControlPlane(settings, SECRET)._published("start", "live", "key")


def test_mediamtx_hook_reads_event_and_path(plane):
    def post(query: dict[str, str], body: bytes = b"", headers: dict[str, str] | None = None):
        request = Request("/control/mediamtx", query, headers or {}, body, "127.0.0.1")
        return asyncio.run(plane.webhooks()["/control/mediamtx"](request))

    assert post({"event": "ready", "path": "live/cam"}).status == 403
    assert post({"secret": SECRET, "event": "started", "path": "live/cam"}).status == 400
    assert post({"secret": SECRET, "event": "ready"}).status == 400  # no path
    body = json.dumps({"event": "bogus", "path": "live/cam"}).encode()
    json_headers = {"content-type": "application/json"}
    assert post({"secret": SECRET}, body, json_headers).status == 400
    command = plane._published("start", *"live/cam".rpartition("/")[::2])
    assert command.stream.url == "rtmp://media:1935/live/cam"
