"""`streamguard replay`'s publisher against a real nginx-rtmp, read back with PyAV."""

import json
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import av
import pytest

from streamguard.ingest.replay import copy_urls, publish

from ..conftest import SAMPLES
from ..support.ports import free_port
from .conftest import NginxRtmp, ffmpeg_publish, publishing

CLIP = SAMPLES / "clips" / "flagged_720p.mp4"  # 10 s, 30 fps, a keyframe every 2 s
# FFmpeg's default analyzeduration (5 s) makes opening a live FLV stream take 5-7 s, because
# nginx-rtmp's FLV header announces audio that never comes; 0.5 s opens at the next keyframe.
READER_OPTIONS = {"rw_timeout": "5000000", "analyzeduration": "500000"}


def open_reader(url: str) -> av.container.InputContainer:
    return av.open(url, timeout=(5, 5), container_options=READER_OPTIONS)


def read_keyframes(url: str, *, until_pts_s: float) -> list[tuple[float, float]]:
    """(pts_s, arrival monotonic time) of each video keyframe, up to ``until_pts_s``.

    Also checks that decode timestamps never go backwards.
    """
    keyframes: list[tuple[float, float]] = []
    last_dts = None
    with open_reader(url) as reader:
        video = reader.streams.video[0]
        for packet in reader.demux(video):
            if packet.dts is None:
                continue
            assert last_dts is None or packet.dts > last_dts, (last_dts, packet.dts)
            last_dts = packet.dts
            if packet.is_keyframe:
                keyframes.append((float(packet.pts * packet.time_base), time.monotonic()))
                if keyframes[-1][0] >= until_pts_s:
                    return keyframes
    raise AssertionError(f"stream ended after keyframes {keyframes}")


def test_published_clip_arrives_in_real_time_with_keyframes_2s_apart(nginx_rtmp: NginxRtmp):
    url = nginx_rtmp.rtmp_url("cam")
    with publishing(CLIP, [url]) as run:
        nginx_rtmp.wait_published("cam")
        keyframes = read_keyframes(url, until_pts_s=6.0)
    assert run.errors == []
    pts = [p for p, _ in keyframes]
    assert len(pts) >= 3
    assert all(abs(b - a - 2.0) < 0.01 for a, b in pairwise(pts))
    # The first keyframe was received while the reader was still probing, the others live.
    media_s = pts[-1] - pts[0]
    wall_s = keyframes[-1][1] - keyframes[0][1]
    assert media_s - 0.6 < wall_s < media_s + 0.3, (media_s, wall_s)


def test_copies_are_published_side_by_side_and_a_dead_one_does_not_stop_them(
    nginx_rtmp: NginxRtmp,
):
    urls = copy_urls(nginx_rtmp.rtmp_url("cam"), 3)
    assert urls == [nginx_rtmp.rtmp_url(f"cam-{n}") for n in range(3)]
    dead_port = free_port()
    dead = f"rtmp://127.0.0.1:{dead_port}/live/cam-dead"
    with publishing(CLIP, [*urls, dead]) as run:
        for n in range(3):
            nginx_rtmp.wait_published(f"cam-{n}")
        with ThreadPoolExecutor(len(urls)) as pool:
            received = list(pool.map(lambda url: read_keyframes(url, until_pts_s=2.0), urls))
    assert all(keyframes for keyframes in received)
    assert [str(error) for error in run.errors] == [
        f"rtmp://127.0.0.1:{dead_port}/live/***: cannot publish (Connection refused)"
    ]


def test_loop_keeps_stream_time_increasing_and_logs_every_keyframe_sent(
    nginx_rtmp: NginxRtmp, tmp_path: Path
):
    url = nginx_rtmp.rtmp_url("loop")
    log = tmp_path / "keyframes.jsonl"
    with publishing(CLIP, [url], loop=True, keyframe_log=log) as run:
        nginx_rtmp.wait_published("loop")
        keyframes = read_keyframes(url, until_pts_s=12.0)  # the clip is 10 s long
    assert run.errors == []
    assert [p for p, _ in keyframes if p >= 10.0][:2] == [10.0, 12.0]

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(line["url"], line["copy"]) for line in lines} == {(url.replace("loop", "***"), 0)}
    sent_pts = [line["pts_s"] for line in lines]
    assert sent_pts == [2.0 * n for n in range(len(sent_pts))]
    assert sent_pts[-1] >= 12.0
    sent_at = [line["sent_at"] for line in lines]
    assert all(abs(b - a - 2.0) < 0.05 for a, b in pairwise(sent_at))


def test_hls_playlist_appears_and_plays(nginx_rtmp: NginxRtmp):
    playlist = nginx_rtmp.hls_url("cam")
    with publishing(CLIP, [nginx_rtmp.rtmp_url("cam")]):
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(playlist, timeout=2) as response:
                    text = response.read().decode()
                    content_type = response.headers["Content-Type"]
                if ".ts" in text:
                    break
            except urllib.error.HTTPError as error:
                assert error.code == 404
            assert time.monotonic() - started < 8, "no HLS playlist after 8 s"
            time.sleep(0.1)
        assert content_type == "application/vnd.apple.mpegurl"
        # Default probing waits 5 s of stream, i.e. for the next fragments; 0.5 s does not.
        with av.open(playlist, timeout=(5, 5), container_options=READER_OPTIONS) as reader:
            first = next(p for p in reader.demux(reader.streams.video[0]) if p.dts is not None)
    assert first.is_keyframe
    # nginx-rtmp writes MPEG-TS timestamps 0.7 s (63000 ticks of 90 kHz) after the RTMP ones.
    assert round(float(first.pts * first.time_base) - 0.7, 3) % 2.0 == 0


def test_dead_url_is_a_one_line_error_with_the_key_redacted():
    port = free_port()
    started = time.monotonic()
    errors = publish(CLIP, [f"rtmp://127.0.0.1:{port}/live/s3cret-key"])
    assert time.monotonic() - started < 2
    assert [str(error) for error in errors] == [
        f"rtmp://127.0.0.1:{port}/live/***: cannot publish (Connection refused)"
    ]


def test_broken_input_is_an_error_naming_the_file(tmp_path: Path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    [error] = publish(broken, [f"rtmp://127.0.0.1:{free_port()}/live/x"])
    assert str(error).startswith(f"{broken}: cannot open (")
    assert "\n" not in str(error)


@pytest.mark.parametrize("publisher", ["replay", "ffmpeg"])
def test_subscriber_gets_eof_soon_after_the_publisher_stops(nginx_rtmp: NginxRtmp, publisher):
    """``idle_streams off``: nginx-rtmp drops subscribers when their publisher leaves."""
    url = nginx_rtmp.rtmp_url("cam")
    start = publishing(CLIP, [url]) if publisher == "replay" else ffmpeg_publish(CLIP, url)
    with start:
        nginx_rtmp.wait_published("cam")
        reader = open_reader(url)
        next(reader.demux(reader.streams.video[0]))
        stopping = time.monotonic()
    # FFmpeg's RTMP client reports the server closing the connection as EIO, not as EOF.
    with reader, pytest.raises(av.error.OSError, match="Input/output error"):
        for _ in reader.demux():
            assert time.monotonic() - stopping < 3, "still receiving 3 s after the publisher left"


def test_replay_command_publishes_copies_until_stopped(nginx_rtmp: NginxRtmp):
    command = [sys.executable, "-m", "streamguard", "replay", str(CLIP)]
    command += [nginx_rtmp.rtmp_url("cli"), "--copies", "2", "--loop"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        nginx_rtmp.wait_published("cli-0", timeout_s=10)
        nginx_rtmp.wait_published("cli-1", timeout_s=10)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0
    assert "publishing" in stderr and "cli-0" not in stderr  # stream names are keys: redacted
