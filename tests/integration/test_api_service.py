"""``streamguard api`` as a process, as an operator runs it: following a real Redis list
through changes and outages, refusing to start exposed, and keeping uploads off the disk."""

import os
import signal
import subprocess
import sys
import time

import pytest

from streamguard.hashing.picture import hash_picture, load_picture

from ..conftest import SAMPLES
from ..support.api_process import Api
from ..support.redis import RedisServer
from .test_run_redis import blocklist

pytestmark = pytest.mark.integration

FLAGGED = SAMPLES / "flagged" / "flagged_02.png"
CLIP = SAMPLES / "clips" / "flagged_720p.mp4"


def until(check, timeout_s: float = 15.0, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every_s)
    raise AssertionError(f"not within {timeout_s} s")


def test_follows_the_redis_list_through_changes_and_an_outage(redis: RedisServer, tmp_path):
    digest = hash_picture(load_picture(FLAGGED), ["pdq"])[0].hex
    match = f"/v1/match?algo=pdq&hash={digest}"
    api = Api(["--redis", redis.url], tmp_path / "api.log")
    try:
        until(lambda: api.get("/readyz")[0] == 200)
        assert api.get(match)[1]["decision"] is None  # not listed yet
        added = blocklist(redis, "add-image", str(FLAGGED), "--algo", "pdq", "--category", "test")
        assert added.returncode == 0, added.stderr
        started = time.monotonic()
        until(lambda: api.get(match)[1]["decision"] == "kill")
        print(f"a Redis add matched after {time.monotonic() - started:.2f} s")
        redis.kill()
        time.sleep(1.5)
        status, answer = api.get(match)  # matching goes on with what it has
        assert (status, answer["decision"]) == (200, "kill")
        status, ready = api.get("/readyz")
        assert status == 200 and ready["blocklist"]["connected"] is False
        redis.start()
        removed = blocklist(redis, "remove", "flagged_02-pdq")
        assert removed.returncode == 0, removed.stderr
        until(lambda: api.get(match)[1]["decision"] is None, timeout_s=30)
    finally:
        assert api.stop() in (0, -signal.SIGTERM)
    log = api.log_path.read_text()
    assert "Redis unavailable" in log and digest not in log


def test_uploads_are_never_written_to_disk(tmp_path):
    """A multipart video upload of several MB, with TMPDIR and the working directory empty
    and watched: nothing is written there."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    api = Api(["--blocklist", str(SAMPLES / "blocklist.csv")], tmp_path / "api.log", env)
    boundary = "sgboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + CLIP.read_bytes() * 1
        + f"\r\n--{boundary}--\r\n".encode()
    )
    try:
        status, answer = api.post(
            "/v1/match", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert status == 200 and answer["decision"] == "kill"
    finally:
        api.stop()
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "0.0.0.0:9"], "without tokens"),
        (["--token-file", "/nonexistent/token"], "cannot read the API token"),
        (["--listen", "nowhere"], "expected HOST:PORT"),
        ([], "no blocklist"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(args, message):
    blocklists = [] if not args else ["--blocklist", str(SAMPLES / "blocklist.csv")]
    done = subprocess.run(
        [sys.executable, "-m", "streamguard", "api", *blocklists, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    first = Api(["--blocklist", str(SAMPLES / "blocklist.csv")], tmp_path / "first.log")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamguard",
                "api",
                "--blocklist",
                str(SAMPLES / "blocklist.csv"),
                "--listen",
                f"127.0.0.1:{first.port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        first.stop()
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{first.port}" in done.stderr
