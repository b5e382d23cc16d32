"""`streamguard blocklist` and `scan --redis` as an operator runs them, against real Redis."""

import csv
import json

import pytest

from ..conftest import SAMPLES
from ..support.cli import blocklist, streamguard
from ..support.redis import RedisServer, redis_server

SAMPLE_LIST = SAMPLES / "blocklist.csv"
FLAGGED = SAMPLES / "clips" / "flagged_720p.mp4"

pytestmark = pytest.mark.integration


def stats(redis: RedisServer) -> dict:
    done = blocklist(redis, "stats", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sample_hashes() -> list[str]:
    with SAMPLE_LIST.open() as rows:
        return [row["hash"] for row in csv.DictReader(rows)]


def test_import_is_atomic_idempotent_and_quiet_about_hashes(redis, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = SAMPLE_LIST.read_text().splitlines()
    bad.write_text("\n".join([*lines[:5], "pdq,not-a-hash,x1,l,test,", *lines[5:]]) + "\n")
    done = blocklist(redis, "import", str(SAMPLE_LIST), str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == f"streamguard: error: {bad}: line 6: pdq hash is not hexadecimal"
    assert stats(redis)["entries"] == 0  # the good first file was not written either

    first = blocklist(redis, "import", str(SAMPLE_LIST))
    again = blocklist(redis, "import", str(SAMPLE_LIST))
    assert first.returncode == again.returncode == 0
    assert "12 added, 0 updated, 0 unchanged" in first.stderr
    assert "0 added, 0 updated, 12 unchanged" in again.stderr
    counts = stats(redis)
    assert counts["entries"] == 12 and counts["version"] == 1  # the re-import wrote nothing
    assert counts["algo"] == {"pdq": 4, "phash": 4, "dhash": 4}
    assert counts["category"] == {"test": 12}
    output = first.stdout + first.stderr + again.stdout + again.stderr
    assert not any(value in output for value in sample_hashes())


def test_add_remove_export_round_trip(redis, tmp_path):
    image = SAMPLES / "images" / "control_01.png"
    added = blocklist(redis, "add-image", str(image), "--category", "test", "--label", "a control")
    assert added.returncode == 0, added.stderr
    manual = blocklist(redis, "add", "--algo", "dhash", "--hash", "00ff00ff00ff00ff", "--id", "m1")
    assert manual.returncode == 0, manual.stderr
    assert stats(redis)["entries"] == 4
    removed = blocklist(redis, "remove", "control_01-phash", "absent")
    assert "removed 1 of 2 (1 not found)" in removed.stderr

    exported = tmp_path / "export.csv"
    assert blocklist(redis, "export", "--output", str(exported)).returncode == 0
    rows = list(csv.DictReader(exported.open()))
    assert {row["id"] for row in rows} == {"control_01-pdq", "control_01-dhash", "m1"}
    assert {row["source"] for row in rows} == {"cli"} and all(float(r["added_at"]) for r in rows)
    assert {row["label"] for row in rows} == {"a control", ""}

    # The export imports into another store unchanged.
    with redis_server(tmp_path / "other") as other:
        assert blocklist(other, "import", str(exported)).returncode == 0
        assert stats(other)["algo"] == {"pdq": 1, "dhash": 2}


def test_add_image_to_a_file_then_scan_with_it(tmp_path):
    listed = tmp_path / "mine.csv"
    images = [str(SAMPLES / "flagged" / f"flagged_0{i}.png") for i in (1, 2)]
    for image in images:  # appends: the header is written once
        done = streamguard("blocklist", "add-image", image, "--output", str(listed))
        assert done.returncode == 0, done.stderr
    assert listed.read_text().count("algo,hash") == 1
    scan = streamguard("scan", "--blocklist", str(listed), str(FLAGGED))
    assert scan.returncode == 1 and "flagged_01-pdq" in scan.stdout


def test_scan_reads_the_blocklist_from_redis(redis):
    assert blocklist(redis, "import", str(SAMPLE_LIST)).returncode == 0
    scan = streamguard("scan", "--redis", redis.url, "--json", str(FLAGGED))
    assert scan.returncode == 1, scan.stderr
    assert {json.loads(line)["entry_id"] for line in scan.stdout.splitlines()} >= {"flagged_01-pdq"}
    both = streamguard("scan", "--redis", redis.url, "--blocklist", str(SAMPLE_LIST), str(FLAGGED))
    assert both.returncode == 2 and "not both" in both.stderr


def test_wrong_password_and_dead_redis_are_one_line_errors(tmp_path):
    with redis_server(tmp_path / "redis", password="s3cret-pw") as server:
        wrong = RedisServer(server.directory, "wrong-pw", server.port)
        done = blocklist(wrong, "stats")
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"streamguard: error: redis://:***@127.0.0.1:{server.port}/0: "
            "authentication failed (wrong user name or password)"
        )
        password_file = tmp_path / "password"
        password_file.write_text("s3cret-pw\n")
        no_password = RedisServer(server.directory, "", server.port)
        assert blocklist(no_password, "stats").returncode == 2
        done = blocklist(no_password, "stats", "--redis-password-file", str(password_file))
        assert done.returncode == 0, done.stderr
    done = streamguard("blocklist", "stats", "--redis", f"redis://127.0.0.1:{server.port}/0")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("cannot connect (Connection refused)")
