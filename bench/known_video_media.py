"""The media bench_known_video measures on, made by FFmpeg and cached by their command.

- The known video: slow zooms and pans over pictures (scikit-image's, else generated
  ones) cut with FFmpeg's generated sources under seeds and parameters of their own,
  encoded as an original upload would be (H.264, CRF 18, 25 fps, a keyframe every 2 s).
- Its re-streams (``Restream``): re-encoded by FFmpeg from the original as a live
  encoder would (fixed 2 s GOP), smaller, with bars, from a later point, mirrored or
  sped up.
- Decoys: other "known videos", FFmpeg's generated sources at low resolution, one
  grey frame per second of each, never encoded (what matters is their hashes).

Every file is named after a digest of the command that makes it, so a change of
parameters makes a new file and a rerun reuses what is there.
"""

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamguard.evaluation.corpus import ZOOMPAN, Picture

FPS = 25
GOP_FRAMES = 2 * FPS
KNOWN_PICTURES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "immunohistochemistry",
)
"""The known video's pictures; the benign footage pans over the other ones."""

# The known video's generated scenes: parameters the benign footage's sources
# (corpus.LAVFI_SOURCES: cellauto rule 110, life B3/S23, mandelbrot's default zoom) never use.
KNOWN_LAVFI = (
    "cellauto=s=640x360:r={fps}:rule=30:seed=7",
    "life=s=640x360:r={fps}:seed=11:rule=B36/S23:ratio=0.3:mold=20"
    ":life_color=#ffd080:death_color=#102040",
    "mandelbrot=s=640x360:r={fps}:start_x=-1.25066:start_y=0.02012:start_scale=1.5"
    ":end_scale=0.002:end_pts={seconds}:maxiter=300",
)


def _digest(argv: list[str]) -> str:
    return hashlib.sha256("\0".join(argv).encode()).hexdigest()[:10]


def ffmpeg(argv: list[str], cache: Path, name: str) -> Path:
    """``ffmpeg argv OUTPUT`` into ``cache/name-DIGEST.mp4``, unless already there."""
    path = cache / f"{name}-{_digest(argv)}.mp4"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *argv]
    subprocess.run([*command, str(partial)], check=True, capture_output=True)
    os.replace(partial, path)
    return path


def x264(kbps: int | None = None) -> list[str]:
    """H.264 with a fixed 2 s GOP: CRF 18 (an original upload) or capped at ``kbps`` with
    a buffer of the same size (a live encoder's CBR)."""
    rate = ["-crf", "18"] if kbps is None else ["-b:v", f"{kbps}k", "-maxrate", f"{kbps}k"]
    rate += [] if kbps is None else ["-bufsize", f"{kbps}k"]
    gop = f"keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0"
    return ["-c:v", "libx264", "-preset", "veryfast", *rate, "-x264-params", gop]


def known_video(
    cache: Path, pictures: list[Picture], scene_s: float, size: tuple[int, int]
) -> Path:
    """Pans over ``pictures`` (``scene_s`` each), a generated scene (``0.8 x scene_s``)
    after every two, as one H.264 file of ``size``."""
    width, height = size
    fit = f"scale={width}:{height},format=yuv420p,setsar=1"
    generated_s = f"{0.8 * scene_s:g}"
    inputs: list[list[str]] = []
    filters: list[str] = []
    for start in range(0, len(pictures), 2):
        for picture in pictures[start : start + 2]:
            inputs.append(["-loop", "1", "-framerate", str(FPS), "-t", f"{scene_s:g}"])
            inputs[-1] += ["-i", str(picture.path)]
            filters.append(f"{ZOOMPAN.format(fps=FPS)},{fit}")
        source = KNOWN_LAVFI[start // 2 % len(KNOWN_LAVFI)]
        source = source.format(fps=FPS, seconds=generated_s)
        inputs.append(["-f", "lavfi", "-t", generated_s, "-i", source])
        filters.append(fit)
    chains = [f"[{n}:v]{chain}[v{n}]" for n, chain in enumerate(filters)]
    joined = "".join(f"[v{n}]" for n in range(len(filters)))
    graph = ";".join([*chains, f"{joined}concat=n={len(filters)}:v=1:a=0[out]"])
    argv = [arg for one in inputs for arg in one]
    argv += ["-filter_complex", graph, "-map", "[out]", *x264(), "-threads", "2", "-an"]
    return ffmpeg(argv, cache, f"known-{width}x{height}")


@dataclass(frozen=True, slots=True)
class Restream:
    """How a re-stream differs from the original."""

    name: str
    offset_s: float = 0.0  # it starts this far into the original
    height: int | None = None  # None: the original's
    kbps: int | None = None  # None: CRF 18
    bars: bool = False  # black bars above and below, each 10 % of the height
    mirror: bool = False
    speed: float = 1.0  # played this much faster, at the same frame rate

    def video_s(self, stream_s: float) -> float:
        """The original's time this re-stream shows at ``stream_s``."""
        return self.offset_s + self.speed * stream_s


def restreams(offsets_s: tuple[float, ...]) -> list[Restream]:
    """Each change alone, then all together from every offset."""
    alone = [
        Restream("re-encoded, CRF 18"),
        Restream("480p at 500 kb/s", height=480, kbps=500),
        Restream("10 % bars", bars=True),
        *[Restream(f"from {offset:g} s", offset_s=offset) for offset in offsets_s if offset],
        Restream("mirrored", mirror=True),
        Restream("1.1x speed", speed=1.1),
    ]
    combined = [
        Restream(
            f"all: 480p 500 kb/s, bars, mirrored, 1.1x, from {offset:g} s",
            offset_s=offset,
            height=480,
            kbps=500,
            bars=True,
            mirror=True,
            speed=1.1,
        )
        for offset in offsets_s
    ]
    return alone + combined


def restream(cache: Path, original: Path, spec: Restream, seconds: float) -> Path:
    """``seconds`` (at most) of ``spec`` made from ``original``."""
    steps = []
    if spec.speed != 1.0:
        steps.append(f"setpts=PTS/{spec.speed:g}")
    if spec.mirror:
        steps.append("hflip")
    if spec.bars:
        steps.append("pad=iw:trunc(ih/0.8/2)*2:0:(oh-ih)/2:black")
    if spec.height is not None:
        steps.append(f"scale=-2:{spec.height}")
    steps += [f"fps={FPS}", "format=yuv420p"]
    argv = ["-ss", f"{spec.offset_s:g}", "-i", str(original), "-t", f"{seconds:g}"]
    argv += ["-vf", ",".join(steps), *x264(spec.kbps), "-threads", "2", "-an"]
    return ffmpeg(argv, cache, "restream")


# -- decoys ---------------------------------------------------------------------------------

# Far from where the benign footage's mandelbrot zooms (and from its mirror image: the set is
# symmetric about the real axis, and PDQ is looked up flipped too).
_MANDELBROT_POINTS = (
    (0.2925, 0.0149),
    (-1.7687788, -0.0017389),
    (-0.1011, 0.9563),
    (0.0016437, -0.8224676),
    (-0.16, 1.0405),
    (-0.235125, 0.827215),
    (0.3602404, -0.6413131),
)
_LIFE_RULES = ("B36/S23", "B3678/S34678", "B368/S245", "B34/S34", "B3/S12345")
_CELLAUTO_RULES = (18, 22, 30, 45, 54, 73, 90, 105, 126, 150)  # not the footage's 110
_TESTSRC2_SIZES = ((256, 192), (192, 192), (240, 180), (144, 192))  # not the footage's 16:9
DECOY_KINDS = ("mandelbrot", "life", "cellauto", "testsrc2")


@dataclass(frozen=True, slots=True)
class Decoy:
    """A made-up known video: ``argv`` gives FFmpeg's input, one frame per second."""

    name: str
    width: int
    height: int
    argv: tuple[str, ...]


def decoy(number: int, frames: int, rng: random.Random) -> Decoy:
    """The ``number``-th decoy, of ``frames`` seconds, its parameters drawn from ``rng``."""
    kind = DECOY_KINDS[number % len(DECOY_KINDS)]
    width, height = 256, 144
    seed = rng.randrange(2**32)
    pre: list[str] = []
    if kind == "mandelbrot":
        width, height = 192, 108
        x, y = rng.choice(_MANDELBROT_POINTS)
        source = (
            f"mandelbrot=s={width}x{height}:r=1:start_x={x}:start_y={y}"
            f":start_scale={rng.uniform(0.3, 1.0):.3f}:end_scale={rng.uniform(1e-5, 1e-3):.6f}"
            f":end_pts={frames}:maxiter=300:outer={rng.randrange(4)}:inner={rng.randrange(4)}"
        )
    elif kind == "life":
        source = (
            f"life=s={width}x{height}:r=5:seed={seed}:rule={rng.choice(_LIFE_RULES)}"
            f":ratio={rng.uniform(0.1, 0.6):.2f}:mold={rng.randrange(40)}"
            f":life_color=#{rng.randrange(2**24):06x}:death_color=#{rng.randrange(2**24):06x}"
            ",fps=1"
        )
    elif kind == "cellauto":
        source = (
            f"cellauto=s={width}x{height}:r=25:seed={seed}:rule={rng.choice(_CELLAUTO_RULES)}"
            f":ratio={rng.uniform(0.2, 0.8):.2f},fps=1"
        )
    else:
        width, height = rng.choice(_TESTSRC2_SIZES)
        source = f"testsrc2=s={width}x{height}:r=1"
        pre = ["-ss", str(rng.randrange(3600))]
    argv = (*pre, "-f", "lavfi", "-i", source, "-frames:v", str(frames))
    return Decoy(f"decoy-{number:03d}-{kind}", width, height, argv)


def decoy_frames(video: Decoy) -> Iterator[np.ndarray]:
    """The decoy's grey frames, one per second, as FFmpeg renders them."""
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *video.argv]
    command += ["-pix_fmt", "gray", "-f", "rawvideo", "-"]
    size = video.width * video.height
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        while len(data := process.stdout.read(size)) == size:
            yield np.frombuffer(data, np.uint8).reshape(video.height, video.width)
        if process.wait() != 0:
            raise subprocess.CalledProcessError(process.returncode, command)
    finally:  # also when the caller stops early: FFmpeg would block on a full pipe
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
