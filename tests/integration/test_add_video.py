"""``blocklist add-video`` and ``hash --vpdq`` against vpdq's own output on the sample clips."""

from pathlib import Path

import pytest

from streamguard.blocklist.formats import load_blocklist_file

from ..conftest import SAMPLES
from ..support.cli import blocklist, streamguard

DATA = Path(__file__).parents[1] / "data" / "vpdq"
CLIPS = sorted((SAMPLES / "clips").iterdir())
MAX_DRIFT_BITS = 4  # measured: 0 on every clip (BENCHMARKS.md); room for other FFmpeg builds

pytestmark = pytest.mark.integration


def reference(clip: Path) -> list[tuple[str, int, str]]:
    """(hex, quality, time as vpdq-hash-video writes it) of each frame vpdq hashed."""
    lines = (DATA / f"{clip.stem}.txt").read_text().split()
    return [(h, int(q), ts) for _, q, h, ts in (line.split(",") for line in lines)]


def signal_video(clip: Path, tmp_path: Path) -> str:
    """The video id an import of ``hash --vpdq``'s line (ThreatExchange's, byte for byte)
    gives the clip: add-video's default, so both land on the same entries."""
    line = streamguard("hash", "--vpdq", str(clip)).stdout
    path = tmp_path / f"{clip.stem}.txt"
    path.write_text(line)
    (video,) = {entry.video for entry in load_blocklist_file(path)}
    return video


def test_add_video_agrees_with_vpdq_on_every_sample_clip(tmp_path):
    listed = tmp_path / "videos.csv"
    done = streamguard(
        "blocklist", "add-video", *map(str, CLIPS), "--output", str(listed), "--category", "test"
    )
    assert done.returncode == 0, done.stderr
    entries = load_blocklist_file(listed)
    for clip in CLIPS:
        video = signal_video(clip, tmp_path)
        mine = [e for e in entries if e.video == video]
        expected = reference(clip)
        assert [f"{e.ts:.3f}" for e in mine] == [ts for _, _, ts in expected], clip.name
        assert [e.quality for e in mine] == [q for _, q, _ in expected], clip.name
        drift = [
            (int.from_bytes(e.digest) ^ int(h, 16)).bit_count()
            for e, (h, _, _) in zip(mine, expected, strict=True)
        ]
        assert max(drift) <= MAX_DRIFT_BITS, (clip.name, drift)
    assert {(e.list, e.category) for e in entries} == {("manual", "test")}
    assert "s of video per CPU second" in done.stderr
    assert not any(e.digest.hex() in done.stderr for e in entries)


def test_hash_vpdq_prints_threatexchanges_line():
    done = streamguard("hash", "--vpdq", str(SAMPLES / "clips" / "flagged_360p.flv"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (DATA / "flagged_360p.signal.txt").read_text()


def test_add_video_to_redis_with_an_id_then_again_changes_nothing(redis):
    clip = str(SAMPLES / "clips" / "clean_360p.flv")
    first = blocklist(redis, "add-video", clip, "--video-id", "clip-1", "--list", "videos")
    assert first.returncode == 0, first.stderr
    assert "10 entries from 1 video(s): 10 added, 0 updated" in first.stderr
    again = blocklist(redis, "add-video", clip, "--video-id", "clip-1", "--list", "videos")
    assert "0 added, 0 updated" in again.stderr, again.stderr
    both = blocklist(redis, "add-video", clip, clip, "--video-id", "x")
    assert both.returncode == 2 and "--video-id names one video" in both.stderr


def test_add_video_of_a_missing_or_non_video_file_is_one_line(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for path in (tmp_path / "absent.mp4", text):
        done = streamguard("blocklist", "add-video", str(path), "--output", str(tmp_path / "o.csv"))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert str(path) in done.stderr
    assert not (tmp_path / "o.csv").exists()
