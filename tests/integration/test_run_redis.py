"""`streamguard run --redis` and `streamguard blocklist` against real Redis and nginx-rtmp."""

import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from ..conftest import SAMPLES
from ..support.redis import RedisServer
from ..support.service import Service
from .conftest import NginxRtmp, publishing
from .test_run import EVERY_LOOP, FAST_RETRIES, FLAGGED_360, FLAGGED_720, events_for

FLAGGED_DIR = SAMPLES / "flagged"
LOOP_S = 10  # the sample clips show their flagged picture at 4 s of every 10 s loop

pytestmark = pytest.mark.integration


def against_redis(redis: RedisServer, command: str, *args: str) -> subprocess.CompletedProcess:
    """``streamguard COMMAND ARGS… --redis URL`` (blocklist, streams)."""
    return subprocess.run(
        [sys.executable, "-m", "streamguard", command, *args, "--redis", redis.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def blocklist(redis: RedisServer, *args: str) -> subprocess.CompletedProcess:
    return against_redis(redis, "blocklist", *args)


def add_image(redis: RedisServer, name: str) -> None:
    done = blocklist(redis, "add-image", str(FLAGGED_DIR / f"{name}.png"), "--category", "test")
    assert done.returncode == 0, done.stderr


def start_run(tmp_path: Path, redis: RedisServer, streams: dict[str, str]) -> Service:
    config = tmp_path / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{url}"\n' for i, url in streams.items())
    config.write_text(f"processes = 1\n[redis]\ntimeout_s = 1\n{FAST_RETRIES}{EVERY_LOOP}{tables}")
    return Service(["--config", str(config), "--redis", redis.url], tmp_path / "run.log")


def ready(service: Service) -> bool:
    try:
        return service.get("/readyz")["ready"]
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        return False


def test_blocklist_changes_reach_a_running_worker(redis, nginx_rtmp: NginxRtmp, tmp_path):
    add_image(redis, "flagged_02")  # something else: the stream is clean for this list
    url = nginx_rtmp.rtmp_url("cam")
    with publishing(FLAGGED_720, [url], loop=True):
        service = start_run(tmp_path, redis, {"cam": url})
        try:
            service.wait_for(
                lambda: service.streams()["cam"]["frames_sampled"] >= LOOP_S // 2 + 1,
                timeout_s=30,
                what="a whole loop watched",
            )
            assert not service.events
            readiness = service.get("/readyz")
            assert readiness["ready"] and readiness["blocklist"][0]["entries"] == 3

            add_image(redis, "flagged_01")
            service.wait_for(
                lambda: events_for(service, "cam"), LOOP_S + 5, "a detection after the add"
            )
            event = service.events[0]
            assert event["match"]["entry_id"].startswith("flagged_01-")

            ids = [f"flagged_01-{algo}" for algo in ("pdq", "phash", "dhash")]
            removed = blocklist(redis, "remove", *ids)
            assert removed.returncode == 0, removed.stderr
            time.sleep(1.5)  # propagation
            seen = len(service.events)
            frames = service.streams()["cam"]["frames_sampled"]
            service.wait_for(
                lambda: service.streams()["cam"]["frames_sampled"] >= frames + LOOP_S // 2 + 1,
                timeout_s=LOOP_S + 10,
                what="another whole loop watched",
            )
            assert len(service.events) == seen  # removed: no longer matched
        finally:
            assert service.stop() == 0, service.log()
    log = service.log()
    assert "blocklist: version 2: 3 entries added or updated, 0 removed" in log


def test_redis_outage_keeps_detection_and_resyncs(redis, nginx_rtmp: NginxRtmp, tmp_path):
    add_image(redis, "flagged_01")
    first, second = nginx_rtmp.rtmp_url("first"), nginx_rtmp.rtmp_url("second")
    with (
        publishing(FLAGGED_720, [first], loop=True),
        publishing(FLAGGED_360, [second], loop=True),
    ):
        service = start_run(tmp_path, redis, {"first": first, "second": second})
        try:
            service.wait_for(lambda: events_for(service, "first"), 30, "a first detection")
            redis.kill()  # kill -9
            service.wait_for(
                lambda: not service.get("/readyz")["blocklist"][0]["connected"], 10, "disconnected"
            )
            before = len(events_for(service, "first"))
            service.wait_for(
                lambda: len(events_for(service, "first")) > before,
                LOOP_S + 5,
                "a detection while Redis is down",
            )
            status = service.get("/readyz")
            assert status["ready"] and status["blocklist"][0]["stale_s"] > 1
            assert "Connection refused" in status["blocklist"][0]["error"]

            redis.start()  # the AOF brings back what was there
            add_image(redis, "flagged_02")  # a change made after the restart
            service.wait_for(
                lambda: events_for(service, "second"), LOOP_S + 20, "the change applied"
            )
            status = service.get("/readyz")["blocklist"][0]
            assert status["connected"] and status["reloads"] == 0 and status["entries"] == 6
        finally:
            assert service.stop() == 0, service.log()
    log = service.log()
    assert "Redis unavailable" in log and "Redis is back" in log


def test_run_waits_for_redis_and_says_why(redis, tmp_path):
    redis.kill()
    service = start_run(tmp_path, redis, {"cam": "rtmp://127.0.0.1:1/live/key"})
    try:
        service.wait_for(lambda: "Redis unavailable" in service.log(), 10, "a log line about Redis")
        assert not ready(service)
        assert service.streams()["cam"]["state"] == "starting"  # not opened before the load
        redis.start()
        service.wait_for(lambda: ready(service), 30, "ready once Redis is up")
    finally:
        assert service.stop() == 0, service.log()
