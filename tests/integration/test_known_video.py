"""A re-stream of a known video, against `streamguard run` on nginx-rtmp and `scan`.

The known video is a slow pan along a strip of the bundled stand-in pictures; its list
is one reference PDQ (pdqhash on the RGB frame, as vPDQ computes it) per second, with
the video's id and time. The re-stream starts 7 s into it, plays at 1.1x, mirrored,
scaled down to 240p between bars, at 400 kb/s: no single frame is a strong match (a
mirrored match never is), so only frames that line up in time can kill it.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pdqhash
import pytest
from PIL import Image

from streamguard.blocklist.entry import COLUMNS

from ..conftest import SAMPLES
from ..support.nginx import NginxRtmp
from ..support.service import Service
from .conftest import publishing

pytestmark = pytest.mark.integration

FPS = 25
HEIGHT = 360
WIDTH = 640
PAN_PX_PER_S = 30
VIDEO_S = 60
VIDEO_ID = "known-pan"
START_S, SPEED = 7.0, 1.1
RESTREAM_S = 24


def strip() -> np.ndarray:
    """The bundled pictures side by side, 360 px high: what the known video pans along."""
    paths = sorted((SAMPLES / "flagged").glob("*.png")) + sorted((SAMPLES / "images").glob("*.png"))
    pictures = []
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        width = round(rgb.shape[1] * HEIGHT / rgb.shape[0])
        pictures.append(cv2.resize(rgb, (width, HEIGHT), interpolation=cv2.INTER_AREA))
    return np.concatenate(pictures, axis=1)


def known_frame(pictures: np.ndarray, video_s: float) -> np.ndarray:
    left = round(video_s * PAN_PX_PER_S)
    return np.ascontiguousarray(pictures[:, left : left + WIDTH])


def restream_frame(pictures: np.ndarray, stream_s: float) -> np.ndarray:
    """The known video at START_S + SPEED x stream time, mirrored, 426x240 with bars of
    10 % of the height above and below."""
    frame = known_frame(pictures, START_S + SPEED * stream_s)[:, ::-1]
    inner = cv2.resize(frame, (426, 192), interpolation=cv2.INTER_AREA)
    out = np.zeros((240, 426, 3), np.uint8)
    out[24:216] = inner
    return out


def encode(path: Path, frames, size: tuple[int, int], bitrate: int) -> Path:
    with av.open(str(path), "w", format="flv") as container:
        stream = container.add_stream(
            "libx264",
            rate=FPS,
            options={"preset": "veryfast", "x264-params": "keyint=50:scenecut=0", "threads": "1"},
        )
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> dict[str, Path]:
    """The known video's list (one row per second) and the re-stream's clip."""
    directory = tmp_path_factory.mktemp("known-video")
    pictures = strip()
    assert pictures.shape[1] >= WIDTH + PAN_PX_PER_S * VIDEO_S
    listed = directory / "known.csv"
    with listed.open("w", newline="") as output:
        writer = csv.writer(output)
        writer.writerow(COLUMNS)
        for second in range(VIDEO_S):
            bits, quality = pdqhash.compute(known_frame(pictures, second))
            digest = np.packbits(bits.astype(np.uint8)).tobytes().hex()
            row = ["pdq", digest, "", "known", "terror", "stand-in", VIDEO_ID, second, quality]
            writer.writerow(row)
    frames = (restream_frame(pictures, i / FPS) for i in range(RESTREAM_S * FPS))
    clip = encode(directory / "restream.flv", frames, (426, 240), 400_000)
    return {"list": listed, "clip": clip}


def test_scan_names_the_known_video_a_file_airs(known):
    scan = [sys.executable, "-m", "streamguard", "scan", "--json", "--sample", "keyframes"]
    result = subprocess.run(
        [*scan, "--blocklist", str(known["list"]), str(known["clip"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    (video,) = [line["video"] for line in lines if "video" in line]
    assert video["id"] == VIDEO_ID, result.stderr
    assert video["frames_matched"] >= 5 and video["coverage"] >= 0.5
    # Video time minus stream time grows by 0.1 s a second at 1.1x.
    assert START_S <= video["offset_s"] <= START_S + 0.1 * RESTREAM_S + 1.0


def test_a_mirrored_faster_restream_is_killed_on_the_video(nginx_rtmp: NginxRtmp, known, tmp_path):
    url = nginx_rtmp.rtmp_url("restream")
    config = tmp_path / "streamguard.toml"
    config.write_text(
        f'[blocklist]\nfiles = ["{known["list"]}"]\n[[streams]]\nid = "restream"\nurl = "{url}"\n'
    )
    service = Service(["--config", str(config)], tmp_path / "run.log")
    try:
        service.wait_for(lambda: service.get("/readyz"), 20, "ready")
        with publishing(known["clip"], [url]):
            service.wait_for(
                lambda: any(e["action"] == "kill" for e in service.events), 40, "a kill"
            )
    finally:
        assert service.stop() == 0, service.log()
    kill = next(e for e in service.events if e["action"] == "kill")
    video = kill["video"]
    assert video["id"] == VIDEO_ID and video["frames_matched"] >= 2, kill
    assert video["coverage"] >= 0.5 and kill["confirmations"] == video["frames_matched"]
    assert START_S - 1.0 <= video["offset_s"] <= START_S + 0.1 * RESTREAM_S + 1.0, kill
    # Not a timing test (bench/bench_known_video.py measures that): this clip's pan
    # matches about 7 keyframes in 12, so two line up after 2 to 10 s.
    assert kill["frame"]["pts_s"] <= 16.0, kill
    assert kill["match"]["list"] == "known" and kill["match"]["category"] == "terror"
