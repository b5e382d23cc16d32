"""add-video's frame hashes against vpdq's, and add-video's speed (BENCHMARKS.md, vPDQ).

Makes clips of several sizes, frame rates and codecs (samples/make_samples.py's scene and
FFmpeg's test sources), hashes each with ``streamguard.hashing.vpdq.hash_video`` (what
``blocklist add-video`` and ``hash --vpdq`` run) and, given ``--reference PYTHON`` (an
interpreter with the vpdq package, never a project dependency), with
``vpdq.computeHash(path, seconds_per_hash=1)``: the bit distance of each frame's hash,
and whether frame numbers, times and qualities are equal. Speed: seconds of video
hashed per CPU second of this process (decoding included), best of ``--repeat``.
"""

import argparse
import json
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from bench import parse
from bench.report import table
from samples.make_samples import make_clip
from streamguard.hashing.vpdq import hash_video

SMOKE = {"seconds": 2, "repeat": 1}
_REFERENCE = """
import json, sys, vpdq
for path in sys.argv[1:]:
    features = vpdq.computeHash(path, seconds_per_hash=1)
    print(json.dumps([[f.frame_number, f.quality, f.hex, f.timestamp] for f in features]))
"""


def make_clips(folder: Path, seconds: int) -> list[tuple[str, Path]]:
    """(what, path) of each clip: H.264 4:2:0 at 24-60 fps and 29.97 fps, 4:4:4 at an odd
    size, MJPEG full range, and H.264 with B-frames."""
    made = [
        ("1280x720 30 fps", make_clip(folder / "a.mp4", 1280, 720, seconds, seed=1)),
        ("640x360 25 fps", make_clip(folder / "b.mp4", 640, 360, seconds, fps=25, seed=3)),
        (
            "854x480 29.97 fps",
            make_clip(folder / "c.mp4", 854, 480, seconds, fps=Fraction(30000, 1001), seed=4),  # type: ignore[arg-type]
        ),
        ("318x178 24 fps", make_clip(folder / "d.mp4", 318, 178, seconds, fps=24, seed=5)),
        ("426x240 60 fps mkv", make_clip(folder / "e.mkv", 426, 240, seconds, fps=60, seed=6)),
    ]
    lavfi = [
        ("321x241 29.97 fps 4:4:4", "testsrc2=size=321x241:rate=30000/1001", "f.mp4",
         ["-pix_fmt", "yuv444p", "-c:v", "libx264"]),
        ("320x240 15 fps MJPEG", "mandelbrot=size=320x240:rate=15", "g.avi",
         ["-pix_fmt", "yuvj420p", "-c:v", "mjpeg"]),
        ("640x360 30 fps B-frames", "testsrc2=size=640x360:rate=30", "h.mp4",
         ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "3"]),
    ]  # fmt: skip
    for what, source, name, codec in lavfi:
        path = folder / name
        command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source]
        subprocess.run([*command, "-t", str(seconds), *codec, str(path)], check=True)
        made.append((what, path))
    return made


def measure(path: Path, repeat: int) -> tuple[list[list], float]:
    """Each frame as [number, quality, hex, time], and seconds of video per CPU second."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        video = hash_video(path)
        best = min(best, time.process_time() - started)
    frames = [
        [n, f.quality, f.digest.hex(), f.ts_s]
        for n, f in zip(video.frame_numbers, video.frames, strict=True)
    ]
    return frames, video.decoded / video.fps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of each made clip")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--reference", metavar="PYTHON", help="an interpreter with vpdq")
    args = parse(parser, SMOKE)
    with tempfile.TemporaryDirectory() as work:
        clips = make_clips(Path(work), args.seconds)
        ours = [measure(path, args.repeat) for _, path in clips]
        theirs: list[list[list]] | None = None
        if args.reference:
            done = subprocess.run(
                [args.reference, "-c", _REFERENCE, *(str(p) for _, p in clips)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            theirs = [json.loads(line) for line in done.stdout.splitlines()]
    rows = []
    for index, ((what, _), (frames, speed)) in enumerate(zip(clips, ours, strict=True)):
        row: list = [what, len(frames), speed]
        if theirs is not None:
            reference = theirs[index]
            distances = [
                (int(a[2], 16) ^ int(b[2], 16)).bit_count()
                for a, b in zip(frames, reference, strict=False)
            ]
            same = len(frames) == len(reference) and all(
                (a[0], a[1], a[3]) == (b[0], b[1], b[3])
                for a, b in zip(frames, reference, strict=True)
            )
            row += [max(distances), sum(distances) / len(distances), "yes" if same else "**no**"]
        rows.append(row)
    header = ["clip", "frames hashed", "s of video per CPU s"]
    if theirs is not None:
        header += ["max bits off", "mean bits off", "same frames, times, qualities"]
    print("\n".join(table(header, rows)))


if __name__ == "__main__":
    main()
