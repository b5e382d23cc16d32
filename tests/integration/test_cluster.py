"""Several `streamguard run` processes share streams through Redis leases (real Redis,
nginx-rtmp and publishers): each stream watched once, taken over after a crash, handed
over on SIGTERM, spread to a newcomer, and registered by nginx-rtmp's own hooks."""

import asyncio
import hashlib
import json
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest

from streamguard.events.schema import rfc3339
from streamguard.infra.redis import RedisSettings, connect
from streamguard.infra.registry import Registry

from ..support.mosquitto import Mosquitto
from ..support.nginx import nginx_rtmp_server
from ..support.ports import free_port
from ..support.redis import RedisServer
from ..support.service import Service
from ..support.subscriber import Subscriber
from .conftest import NginxRtmp, ffmpeg_publish, publishing
from .test_enforce_nginx import Enforce, samples, wait_until
from .test_metrics import scrape
from .test_run import EVERY_LOOP, FAST_RETRIES, FLAGGED_360, FLAGGED_720
from .test_run_redis import LOOP_S, add_image

pytestmark = pytest.mark.integration

STREAMS = 30
TTL_S = 6
SECRET = "control-secret-for-tests"


def cluster_config(
    tmp_path: Path, name: str, redis: RedisServer, extra: str = "", processes: int = 1
) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "secret").write_text(SECRET)
    config = directory / "streamguard.toml"
    config.write_text(
        f'processes = {processes}\nworker_id = "{name}"\nstate_dir = "state"\n'
        f'[redis]\nurl = "{redis.url}"\ntimeout_s = 1\n'
        f"[cluster]\nenabled = true\nlease_ttl_s = {TTL_S}\n"
        f'[control]\nsecret_file = "secret"\n{extra}{FAST_RETRIES}{EVERY_LOOP}'
    )
    return config


def start(tmp_path: Path, name: str, config: Path, **options) -> Service:
    return Service(["--config", str(config)], tmp_path / f"{name}.log", **options)


def watching(services: dict[str, Service]) -> dict[str, list[str]]:
    """Stream ids each service is watching now."""
    return {
        name: sorted(s["stream_id"] for s in service.get("/streams") if s["state"] == "watching")
        for name, service in services.items()
    }


def spread(services: dict[str, Service], expected: dict[str, int]) -> dict[str, list[str]] | None:
    """The streams each service watches, once every stream is watched exactly once and
    each service watches the expected number; else None."""
    now = watching(services)
    counts = Counter(stream for streams in now.values() for stream in streams)
    if len(counts) != STREAMS or max(counts.values()) > 1:
        return None
    if {name: len(streams) for name, streams in now.items()} != expected:
        return None
    return now


def test_streams_are_shared_taken_over_handed_back_and_spread(
    redis: RedisServer, nginx_rtmp: NginxRtmp, tmp_path
):
    add_image(redis, "flagged_02")  # shown by the 360p clip
    names = [f"s{n:02d}" for n in range(STREAMS)]
    tables = "".join(f'[[streams]]\nid = "{n}"\nurl = "{nginx_rtmp.rtmp_url(n)}"\n' for n in names)
    configs = {w: cluster_config(tmp_path, w, redis, tables) for w in ("a", "b", "c", "d")}
    with publishing(FLAGGED_360, [nginx_rtmp.rtmp_url(n) for n in names], loop=True):
        services: dict[str, Service] = {}
        try:
            for name in ("a", "b", "c"):
                services[name] = start(tmp_path, name, configs[name])
            a = services["a"]
            a.wait_for(
                lambda: spread(services, {"a": 10, "b": 10, "c": 10}),
                30,
                "30 streams watched once each, 10 per process",
            )

            # kill -9: the streams of c come back within the lease TTL (+ a heartbeat)
            orphans = set(watching({"c": services["c"]})["c"])
            services["c"].process.send_signal(signal.SIGKILL)
            killed_at = time.time()
            crashed = services.pop("c")
            a.wait_for(
                lambda: spread(services, {"a": 15, "b": 15}), TTL_S + 10, "c's streams taken over"
            )
            taken_over_s = time.time() - killed_at
            assert taken_over_s < TTL_S + TTL_S / 4 + 3, taken_over_s  # + opening the streams

            # ...and a flagged frame shown after the crash is still detected on them
            def detected_after_crash() -> set[str]:
                events = services["a"].events + services["b"].events
                return {
                    e["stream_id"]
                    for e in events
                    if e["stream_id"] in orphans and e["detected_at"] > rfc3339(killed_at)
                }

            a.wait_for(detected_after_crash, LOOP_S + 10, "a detection on a taken-over stream")

            # SIGTERM: b hands its leases back at once and watches on while a takes them
            leaving = services.pop("b")
            leaving.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            a.wait_for(lambda: spread(services, {"a": 30}), TTL_S, "b's streams handed over")
            handed_over_s = time.monotonic() - stopped_at
            assert handed_over_s < TTL_S / 4 + 3, handed_over_s  # not a lease expiry
            assert leaving.stop() == 0

            # a newcomer gets its share
            services["d"] = start(tmp_path, "d", configs["d"])
            a.wait_for(lambda: spread(services, {"a": 15, "d": 15}), 20, "load spread to d")
            metrics = scrape(a)
            assert 'streamguard_cluster_releases_total{reason="rebalance"}' in metrics
        finally:
            for service in services.values():
                assert service.stop() == 0, service.log()
    crashed.stop()
    for name in ("a", "b"):
        log = (tmp_path / f"{name}.log").read_text()
        assert "Traceback" not in log, log


def test_nginx_rtmp_hooks_register_and_remove_a_stream(redis: RedisServer, tmp_path):
    add_image(redis, "flagged_01")
    port = free_port()
    hook = f"http://127.0.0.1:{port}/control/nginx-rtmp?secret={SECRET}"
    with nginx_rtmp_server(
        tmp_path / "nginx", hls=False, on_publish=hook, on_publish_done=hook
    ) as nginx:
        pull = f'pull_url = "rtmp://127.0.0.1:{nginx.rtmp_port}/{{app}}/{{name}}"\n'
        # two worker processes: the webhook is answered, and counted, by their parent
        config = cluster_config(tmp_path, "a", redis, pull, processes=2)
        service = start(tmp_path, "a", config, port=port)
        try:
            service.wait_for(lambda: service.get("/readyz")["ready"], 20, "ready")
            with ffmpeg_publish(FLAGGED_720, nginx.rtmp_url("secret-stream-key")):
                (stream_id,) = service.wait_for(
                    lambda: watching({"a": service})["a"], 20, "the stream registered and watched"
                )
                assert stream_id.startswith("live-") and "secret" not in stream_id
                service.wait_for(
                    lambda: [e for e in service.events if e["stream_id"] == stream_id],
                    LOOP_S + 5,
                    "a detection on the registered stream",
                )
            service.wait_for(
                lambda: not service.get("/streams"), TTL_S, "the stream removed on publish_done"
            )
            metrics = scrape(service)
        finally:
            assert service.stop() == 0, service.log()
    assert (
        'streamguard_control_commands_total{action="start",result="ok",source="webhook"} 1.0'
        in metrics
    )
    assert (
        'streamguard_control_commands_total{action="stop",result="ok",source="webhook"} 1.0'
        in metrics
    )
    log = service.log()
    assert "secret-stream-key" not in log and SECRET not in log
    assert f"stream '{stream_id}' registered by webhook" in log


def registrations(redis: RedisServer) -> dict[str, str]:
    """Stream id -> URL, as registered in Redis."""

    async def read() -> dict[str, str]:
        client = connect(RedisSettings(url=redis.url))
        try:
            streams = await Registry(client, RedisSettings().prefix).streams()
        finally:
            await client.aclose()
        return {stream_id: registration["url"] for stream_id, registration in streams.items()}

    return asyncio.run(read())


def test_mediamtx_hooks_register_paths_of_any_depth(redis: RedisServer, tmp_path):
    """MediaMTX paths need not be APP/NAME: `cam1` and `live/sub/cam1` register too, with
    the default templates, and are read from rtmp://HOST:1935/<path> as MediaMTX serves them."""
    add_image(redis, "flagged_01")
    service = start(tmp_path, "a", cluster_config(tmp_path, "a", redis))

    def hook(event: str, path: str) -> dict:
        query = urlencode({"secret": SECRET, "event": event, "path": path})
        url = f"http://127.0.0.1:{service.port}/control/mediamtx?{query}"
        with urllib.request.urlopen(url, data=b"", timeout=10) as reply:
            return json.loads(reply.read())

    def digest(name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()[:16]

    expected = {
        digest("cam1"): "rtmp://127.0.0.1:1935/cam1",
        f"live-{digest('cam2')}": "rtmp://127.0.0.1:1935/live/cam2",
        f"live-{digest('sub/cam1')}": "rtmp://127.0.0.1:1935/live/sub/cam1",
    }
    try:
        service.wait_for(lambda: service.get("/readyz")["ready"], 20, "ready")
        paths = ("cam1", "live/cam2", "live/sub/cam1")
        started = [hook("ready", path) for path in paths]
        assert [r["outcome"] for r in started] == ["added"] * 3
        assert {r["stream_id"] for r in started} == set(expected)
        assert registrations(redis) == expected
        stopped = [hook("not_ready", path) for path in paths]
        assert [r["outcome"] for r in stopped] == ["removed"] * 3
        assert registrations(redis) == {}
    finally:
        assert service.stop() == 0, service.log()
    assert "Traceback" not in service.log()


def mosquitto_pub(port: int, topic: str, payload: dict) -> None:
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            json.dumps(payload),
        ],
        check=True,
        timeout=10,
    )


def test_control_topic_starts_and_stops_a_stream(
    redis: RedisServer, mosquitto: Mosquitto, nginx_rtmp: NginxRtmp, tmp_path
):
    add_image(redis, "flagged_01")
    url = nginx_rtmp.rtmp_url("cam-key")
    config = cluster_config(tmp_path, "a", redis, f'[mqtt]\nurl = "{mosquitto.url()}"\n')
    control = "streamguard/v1/control/streams/cam"
    with publishing(FLAGGED_720, [url], loop=True), Subscriber(mosquitto.port) as subscriber:
        service = start(tmp_path, "a", config)
        try:
            service.wait_for(lambda: service.get("/readyz")["ready"], 20, "ready")
            time.sleep(0.5)  # the control subscription follows the connection
            mosquitto_pub(mosquitto.port, control, {"action": "start", "url": url, "secret": "no"})
            mosquitto_pub(
                mosquitto.port, control, {"action": "start", "url": url, "secret": SECRET}
            )
            service.wait_for(lambda: watching({"a": service})["a"] == ["cam"], 20, "cam watched")
            service.wait_for(lambda: subscriber.on("kill", "cam"), LOOP_S + 5, "a kill for cam")
            mosquitto_pub(mosquitto.port, control, {"action": "stop", "secret": SECRET})
            service.wait_for(lambda: not service.get("/streams"), TTL_S, "cam removed")
            service.wait_for(
                lambda: [m for m in subscriber.on("status", "cam") if not m.payload],
                5,
                "cam's retained status cleared",
            )
            metrics = scrape(service)
        finally:
            assert service.stop() == 0, service.log()
    for action, result in (("start", "unauthorized"), ("start", "ok"), ("stop", "ok")):
        labels = f'action="{action}",result="{result}",source="mqtt"'
        assert f"streamguard_control_commands_total{{{labels}}} 1.0" in metrics, labels
    log = service.log()
    assert "mqtt command refused: wrong or missing secret" in log
    assert "cam-key" not in log and SECRET not in log


def test_a_stream_the_media_server_registered_is_killed_and_dropped(
    redis: RedisServer, mosquitto: Mosquitto, tmp_path
):
    """No [[streams]] anywhere: nginx-rtmp registers the broadcast, run kills it, and
    enforce finds its publisher through the registry."""
    add_image(redis, "flagged_01")
    port, enforce_port = free_port(), free_port()
    hook = f"http://127.0.0.1:{port}/control/nginx-rtmp?secret={SECRET}"
    with nginx_rtmp_server(
        tmp_path / "nginx", hls=False, on_publish=hook, on_publish_done=hook
    ) as nginx:
        (tmp_path / "hook-secret").write_text(SECRET)
        config = cluster_config(
            tmp_path,
            "a",
            redis,
            f'pull_url = "rtmp://127.0.0.1:{nginx.rtmp_port}/{{app}}/{{name}}"\n'
            f'[mqtt]\nurl = "{mosquitto.url()}"\n'
            f'[enforce]\nadapter = "nginx-rtmp"\napi_url = "{nginx.control_url}"\n'
            f'listen = "127.0.0.1:{enforce_port}"\nhook_secret_file = "../hook-secret"\n'
            f'state_file = "state/enforce.sqlite3"\n',
        )
        enforce = Enforce(config, enforce_port, tmp_path / "enforce.log")
        service = start(tmp_path, "a", config, port=port)
        try:
            with ffmpeg_publish(FLAGGED_720, nginx.rtmp_url("secret-stream-key")) as publisher:
                wait_until(lambda: publisher.poll() is not None, 30, "the publisher dropped")
            drops = samples(enforce.scrape())
            assert drops['streamguard_enforce_drops_total{outcome="dropped"}'] == 1
        finally:
            assert service.stop() == 0, service.log()
            enforce.stop()
    log = (tmp_path / "enforce.log").read_text()
    assert "secret-stream-key" not in log and "and the registered ones" in log
