"""The lists bench_known_video loads: a known video's vPDQ as streamguard CSV rows, and
decoy known videos, and the reference matcher's verdict on two videos.

A known video's vPDQ comes from the reference ``vpdq`` package when an interpreter that
has it is given (bench/vpdq_reference.py runs there); otherwise streamguard hashes the
same frames itself (each whole second's first frame, decoded to RGB, then grey and PDQ),
which the report says.
"""

import csv
import hashlib
import json
import os
import random
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from bench.known_video_media import decoy, decoy_frames
from streamguard.blocklist.entry import COLUMNS
from streamguard.hashing.pdq import MIN_QUALITY, pdq_hash
from streamguard.hashing.preprocess import Luma

REFERENCE_SCRIPT = Path(__file__).with_name("vpdq_reference.py")
LIST = "known-videos"
CATEGORY = "test"


@dataclass(frozen=True, slots=True)
class Feature:
    """One vPDQ frame: its PDQ (hex), quality and time in the video."""

    hex: str
    quality: int
    ts_s: float


def reference_vpdq(python: str, video: Path) -> list[Feature]:
    """``vpdq.computeHash(video, seconds_per_hash=1)``, run by ``python``."""
    done = subprocess.run(
        [python, str(REFERENCE_SCRIPT), "hash", str(video)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REFERENCE_SCRIPT.parent,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [Feature(hex_hash, int(quality), float(ts)) for _, quality, hex_hash, ts in rows]


def own_vpdq(video: Path) -> list[Feature]:
    """The frames vpdq hashes at one per second (every ``round(fps)``-th frame, at
    ``number / fps`` seconds), hashed by streamguard's PDQ of the RGB frame made grey."""
    features = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 25)
        step = max(1, round(fps))
        for number, frame in enumerate(container.decode(stream)):
            if number % step:
                continue
            grey = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)
            digest, quality = pdq_hash(Luma(grey))
            features.append(Feature(digest.hex(), quality, round(number / fps, 3)))
    return features


def reference_match(
    python: str, query: list[Feature], compared: list[Feature], work: Path
) -> dict[str, float]:
    """ThreatExchange's ``match_VPDQ_hash_brute(query, compared)`` with its thresholds:
    the percent of each video's frames found in the other."""
    paths = []
    for name, features in (("query", query), ("compared", compared)):
        path = work / f"{name}.vpdq.json"
        path.write_text(json.dumps([f"{f.hex},{f.quality},{f.ts_s}" for f in features]))
        paths.append(str(path))
    done = subprocess.run(
        [python, str(REFERENCE_SCRIPT), "match", *paths],
        capture_output=True,
        text=True,
        check=True,
        cwd=REFERENCE_SCRIPT.parent,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def video_rows(video: str, features: Iterable[Feature]) -> list[list[str]]:
    """A known video's list rows: one per frame of quality ≥ 50, as vPDQ lists hold."""
    return [row(video, f) for f in features if f.quality >= MIN_QUALITY]


def row(video: str, feature: Feature) -> list[str]:
    """The CSV row of one frame of ``video`` (its id says which frame)."""
    ts = f"{feature.ts_s:g}"
    entry = f"{video}@{ts}"
    return ["pdq", feature.hex, entry, LIST, CATEGORY, "", video, ts, str(feature.quality)]


def write_csv(path: Path, rows: Iterable[list[str]]) -> Path:
    """A streamguard CSV with the video columns, written whole before it is named."""
    partial = path.with_suffix(".part")
    with partial.open("w", newline="", encoding="utf-8") as output:
        writer = csv.writer(output)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    os.replace(partial, path)
    return path


def decoy_list(cache: Path, frames: int, frames_per_video: int, seed: int) -> Path:
    """``frames`` rows of decoy known videos (quality ≥ 50 only, as a vPDQ list holds;
    the last video cut short), cached by their parameters."""
    key = hashlib.sha256(f"{frames},{frames_per_video},{seed},v1".encode()).hexdigest()[:10]
    path = cache / f"decoys-{frames}-{key}.csv"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows: list[list[str]] = []
    made: dict[str, list[str]] = {}  # FFmpeg's input arguments, by decoy
    while len(rows) < frames:
        video = decoy(len(made), frames_per_video, rng)
        made[video.name] = list(video.argv)
        for ts, grey in enumerate(decoy_frames(video)):
            digest, quality = pdq_hash(Luma(np.ascontiguousarray(grey)))
            if quality < MIN_QUALITY:
                continue
            rows.append(row(video.name, Feature(digest.hex(), quality, float(ts))))
            if len(rows) == frames:
                break
        if not any(row[6] == video.name for row in rows[-1:]):
            raise RuntimeError(f"{video.name}: no frame of quality {MIN_QUALITY} or more")
    path.with_suffix(".json").write_text(json.dumps(made, indent=1) + "\n")
    return write_csv(path, rows)
