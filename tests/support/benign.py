"""Benign footage from FFmpeg's generated sources, as a live encoder would send it.

Content (test cards, fractals, cellular automata, smooth colour fields) and the
featureless frames streams show between scenes: black, white, grey and tinted slates
(some with sensor-like noise), fades to and from black and white, linear gradients at
any angle, radial gradients and vignettes, each faded or faint at times. Nothing in it
is an entry of any list except the degenerate ones the benchmark loads on purpose.

Shared by tests/integration/test_degenerate.py and bench/bench_benign.py.
"""

import hashlib
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamguard.config.sampling import GuardSettings

WIDTH, HEIGHT, FPS = 1280, 720, 4
GOP_FRAMES = 2  # a keyframe every 0.5 s: two looks a second
SIZE = f"{WIDTH}x{HEIGHT}"

EVERY_KEYFRAME = GuardSettings(min_gap_s=0.0, max_samples_per_s=1e9, sample_burst=10**9)
"""``keyframes`` sampling without its flood limits (docs/sampling.md): their random
minimum spacing would skip some of the footage's two keyframes a second, and a live
stream's rate cap more. Every keyframe is looked at."""


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str
    featureless: bool  # a slate, fade, gradient: what degenerate entries would match
    seconds: float
    graph: str  # an FFmpeg filter chain with no input, ending in one video of ``seconds``


def _still(seconds: float, lum: str) -> str:
    """A grey picture from a ``geq`` expression, computed once and held for ``seconds``."""
    return (
        f"color=black:s={SIZE}:r={FPS}:d=1,format=gray,geq=lum='{lum}',"
        f"loop=loop=-1:size=1,trim=duration={seconds:g},setpts=N/{FPS}/TB"
    )


def _grey(level: int) -> str:
    return f"0x{level:02x}{level:02x}{level:02x}"


def _source(name: str, seconds: float, options: str = "") -> str:
    extra = f":{options}" if options else ""
    return f"{name}=s={SIZE}:r={FPS}{extra},trim=duration={seconds:g},setpts=PTS-STARTPTS"


def _content(kind: str, seconds: float, rng: np.random.Generator) -> str:
    if kind == "cellauto":
        return _source("cellauto", seconds, f"rule={rng.choice([18, 30, 90, 110, 150])}")
    if kind == "life":
        return _source("life", seconds, "mold=10:ratio=0.1:death_color=#202020")
    if kind == "gradients":  # smooth colour fields, slowly turning
        return _source("gradients", seconds, f"seed={int(rng.integers(1 << 30))}:speed=0.02")
    return _source(kind, seconds)


def _featureless(kind: str, seconds: float, rng: np.random.Generator) -> str:
    low, high = sorted(int(v) for v in rng.integers(0, 256, 2))
    if high - low < 8:
        low, high = 0, 255
    if kind in ("black", "white"):
        return f"color={kind}:s={SIZE}:r={FPS}:d={seconds:g}"
    if kind == "grey":
        return f"color={_grey(int(rng.integers(0, 256)))}:s={SIZE}:r={FPS}:d={seconds:g}"
    if kind == "slate":  # a tinted card, with faint sensor noise half the time
        colour = "0x" + "".join(f"{int(v):02x}" for v in rng.integers(16, 96, 3))
        noise = ",noise=alls=3:allf=t" if rng.random() < 0.5 else ""
        return f"color={colour}:s={SIZE}:r={FPS}:d={seconds:g}{noise}"
    if kind in ("fade-out", "fade-in"):
        content = str(rng.choice(["testsrc2", "smptebars", "mandelbrot"]))
        colour = str(rng.choice(["black", "white"]))
        direction = kind.removeprefix("fade-")
        fade = f"fade=t={direction}:st=0:d={seconds:g}:color={colour}"
        return f"{_source(content, seconds)},{fade}"
    if kind == "linear":
        angle = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(angle), math.sin(angle)
        span = abs(c) + abs(s)
        ramp = f"((X/W-0.5)*{c:.4f}+(Y/H-0.5)*{s:.4f})/{span:.4f}+0.5"
        return _still(seconds, f"{low}+{high - low}*({ramp})")
    if kind == "radial":
        ramp = "hypot(X-W/2,Y-H/2)/hypot(W/2,H/2)"
        if rng.random() < 0.5:
            ramp = f"(1-{ramp})"
        return _still(seconds, f"{low}+{high - low}*{ramp}")
    if kind == "vignette":
        level = int(rng.integers(64, 256))
        angle = rng.uniform(math.pi / 5, math.pi / 2)
        return f"color={_grey(level)}:s={SIZE}:r={FPS}:d={seconds:g},vignette=angle={angle:.3f}"
    if kind == "noise":  # a dark screen from a noisy sensor
        level = int(rng.integers(0, 40))
        return f"color={_grey(level)}:s={SIZE}:r={FPS}:d={seconds:g},noise=alls=8:allf=t"
    raise ValueError(f"unknown kind {kind!r}")


CONTENT = ("testsrc2", "smptebars", "smptehdbars", "mandelbrot", "cellauto", "life", "gradients")
FEATURELESS = (
    "black",
    "white",
    "grey",
    "slate",
    "fade-out",
    "fade-in",
    "linear",
    "radial",
    "vignette",
    "noise",
)


def segments(seconds: float, seed: int = 0, segment_s: float = 20.0) -> list[Segment]:
    """About ``seconds`` of footage: featureless and content segments alternating, two
    featureless ones for every content one, each kind in turn with random settings."""
    rng = np.random.default_rng(seed)
    made: list[Segment] = []
    total, step = 0.0, 0
    while total < seconds - 1e-9:
        length = min(segment_s, seconds - total)
        if step % 3 == 2:
            kind = CONTENT[(step // 3) % len(CONTENT)]
            made.append(Segment(kind, False, length, _content(kind, length, rng)))
        else:
            kind = FEATURELESS[(step - step // 3) % len(FEATURELESS)]
            made.append(Segment(kind, True, length, _featureless(kind, length, rng)))
        total += length
        step += 1
    return made


def featureless_only(seconds_each: float) -> list[Segment]:
    """One segment of each featureless kind (the short clip of the tests)."""
    rng = np.random.default_rng(1)
    return [Segment(k, True, seconds_each, _featureless(k, seconds_each, rng)) for k in FEATURELESS]


def render(parts: list[Segment], directory: Path) -> Path:
    """The segments one after another as an H.264 file (yuv420p, a keyframe every 0.5 s),
    cached in ``directory`` by the command that makes it."""
    chains = [f"{part.graph},format=yuv420p,setsar=1[s{i}]" for i, part in enumerate(parts)]
    joined = "".join(f"[s{i}]" for i in range(len(parts)))
    graph = ";".join([*chains, f"{joined}concat=n={len(parts)}:v=1:a=0[out]"])
    options = ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p"]
    options += ["-x264-params", f"keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0"]
    argv = ["-filter_complex", graph, "-map", "[out]", *options]
    digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()[:12]
    path = directory / f"benign-{round(sum(p.seconds for p in parts))}s-{digest}.mp4"
    if path.exists():
        return path
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("the ffmpeg command is needed (Debian: apt-get install ffmpeg)")
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *argv]
    subprocess.run([*command, str(partial)], check=True, capture_output=True, text=True)
    os.replace(partial, path)
    return path


def blankest_s(part: Segment) -> float:
    """Seconds into ``part`` where it is most featureless: the black or white end of a
    fade (its middle still shows the content), the middle of anything else."""
    if part.kind == "fade-out":
        return part.seconds - 1 / FPS
    if part.kind == "fade-in":
        return 0.0
    return part.seconds / 2


def segment_at(parts: list[Segment], pts_s: float) -> int:
    """The number of the segment showing at ``pts_s``."""
    ends = np.cumsum([part.seconds for part in parts])
    return min(int(np.searchsorted(ends, pts_s, side="right")), len(parts) - 1)
