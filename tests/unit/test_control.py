"""Control commands are checked before anything reaches Redis: pure logic, no servers."""

import asyncio
import hashlib
import json

import pytest
from prometheus_client import REGISTRY

from streamguard.config import STREAM_ID, ClusterSettings, ControlSettings, Settings
from streamguard.infra.http import Request
from streamguard.infra.redis import RedisSettings
from streamguard.runtime.control import ControlPlane, Refused, _app_and_name

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


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


@pytest.fixture
def default_plane() -> ControlPlane:
    """The shipped [control] templates: stream_id {app}-{name_digest}, pull_url .../{path}."""
    settings = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1"), cluster=ClusterSettings(enabled=True)
    )
    return ControlPlane(settings, SECRET)


@pytest.mark.parametrize(
    ("path", "stream_id", "url"),
    [
        ("cam1", digest("cam1"), "rtmp://127.0.0.1:1935/cam1"),  # one level: no app
        ("/live/cam2", f"live-{digest('cam2')}", "rtmp://127.0.0.1:1935/live/cam2"),
        ("live/sub/cam3", f"live-{digest('sub/cam3')}", "rtmp://127.0.0.1:1935/live/sub/cam3"),
    ],
)
def test_mediamtx_paths_of_any_depth_register(default_plane, path, stream_id, url):
    app, name = _app_and_name(path)
    assert (f"{app}/{name}" if app else name) == path.strip("/")
    for action in ("start", "stop"):  # not_ready finds the stream ready registered
        command = default_plane._published(action, app, name)
        assert command.stream.id == stream_id and STREAM_ID.match(stream_id)
    assert default_plane._published("start", app, name).stream.url == url  # MediaMTX: /<path>


def test_mediamtx_paths_pass_the_webhook(default_plane, caplog):
    """Valid commands: they get as far as Redis (unreachable here), not a 400."""
    for path in ("cam1", "live/sub/cam1"):
        query = {"secret": SECRET, "event": "ready", "path": path}
        request = Request("/control/mediamtx", query, {}, b"", "127.0.0.1")
        response = asyncio.run(default_plane.webhooks()["/control/mediamtx"](request))
        assert response.status == 503, response.body


def test_nginx_rtmp_names_and_urls_are_as_before(default_plane):
    """The default pull_url is now .../{path}: for nginx-rtmp that is .../{app}/{name}."""
    command = default_plane._published("start", "live", "secret-key-123")
    assert command.stream.id == f"live-{digest('secret-key-123')}"
    assert command.stream.url == "rtmp://127.0.0.1:1935/live/secret-key-123"
    # a template whose app comes last keeps its trailing separator: ids never change
    settings = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1"),
        control=ControlSettings(stream_id="{name_digest}.{app}"),
    )
    plane = ControlPlane(settings, SECRET)
    assert plane._published("start", "", "cam1").stream.id == f"{digest('cam1')}."
