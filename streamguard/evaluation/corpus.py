"""What the detection-quality evaluation looks at: the pictures, H.264 clips made of
transformed pictures, and benign footage, all read back through the production sampler.

Pictures come from a directory, from scikit-image's bundled sample images (only those
shipped in its wheel: nothing is downloaded), or from the bundled samples
(streamguard/samples).
"""

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.errors import StreamguardError
from streamguard.hashing import IMAGE_SUFFIXES
from streamguard.ingest.sampler import DEFAULT_GUARD, Frame, sample_frames
from streamguard.ingest.source import open_source, video_stream

SKIMAGE_PICTURES = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "shepp_logan_phantom",
    "stereo_motorcycle",
    "text",
)
"""skimage.data functions whose pictures ship in the scikit-image wheel (checked offline).
Left out: ``cat`` (= chelsea), ``clock`` (PDQ quality 34: no entry possible),
``checkerboard`` (the same after a flip or a quarter turn), and every function that
needs ``pooch`` to download its file."""


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture of the corpus: ``path`` is what ``blocklist add-image`` would read."""

    name: str
    path: Path
    rgb: np.ndarray
    entry: bool  # in the blocklist (a positive); otherwise only ever a negative


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """scikit-image's arrays (grey, RGB, RGBA; bool, float or uint8) as RGB uint8."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:  # RGBA: over white, as a browser would show it
        alpha = array[:, :, 3:4].astype(np.float32) / 255
        rgb = array[:, :, :3].astype(np.float32) * alpha + 255 * (1 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return array[:, :, :3]


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _write_png(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        Image.fromarray(rgb).save(path)
    return path


def skimage_pictures(out_dir: Path) -> list[Picture] | None:
    """The bundled scikit-image pictures as PNGs under ``out_dir``; None without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        return None
    pictures = []
    for name in SKIMAGE_PICTURES:
        array = getattr(data, name)()
        if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
            array = array[0]
        path = _write_png(_as_rgb(array), out_dir / f"{name}.png")
        pictures.append(Picture(name, path, _read_rgb(path), entry=True))
    return pictures


def directory_pictures(directory: Path, *, entry: bool) -> list[Picture]:
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise StreamguardError(f"{directory}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [Picture(p.stem, p, _read_rgb(p), entry) for p in paths]


def generated_pictures(out_dir: Path, count: int, seed: int = 8) -> list[Picture]:
    """Benign synthetic pictures (shapes over colour clouds), as extra negatives."""
    from streamguard.evaluation.transforms import background

    rng = np.random.default_rng(seed)
    pictures = []
    for i in range(count):
        rgb = background(960, 720, rng)
        for _ in range(12):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            x, y = int(rng.integers(0, 960)), int(rng.integers(0, 720))
            size = int(rng.integers(30, 200))
            if rng.random() < 0.5:
                cv2.circle(rgb, (x, y), size, colour, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(rgb, (x, y), (x + size, y + size // 2), colour, -1)
        path = _write_png(rgb, out_dir / f"generated_{i + 1:02d}.png")
        pictures.append(Picture(path.stem, path, _read_rgb(path), entry=False))
    return pictures


# -- clips ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a clip of pictures is encoded: like a live encoder (libx264, yuv420p, a fixed
    2 s GOP, bit rate capped by a 1 s VBV buffer as OBS's CBR does), at a low frame rate
    because the pictures are still: the keyframe gets the same bits either way."""

    fps: int = 2
    gop_frames: int = 4
    preset: str = "veryfast"

    @property
    def gop_s(self) -> float:
        return self.gop_frames / self.fps


def encode_clip(
    path: Path, pictures: Sequence[np.ndarray], bitrate: int, gops_each: int, encoding: Encoding
) -> Path:
    """An H.264 clip showing each picture (RGB, all the same size) for ``gops_each`` GOPs,
    so that each of its keyframes shows one picture, in order."""
    height, width = pictures[0].shape[:2]
    kbps = max(1, bitrate // 1000)
    gop = encoding.gop_frames
    time_base = Fraction(1, encoding.fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264",
            rate=encoding.fps,
            options={
                "preset": encoding.preset,
                "x264-params": (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:"
                    f"vbv-maxrate={kbps}:vbv-bufsize={kbps}"
                ),
                "threads": "1",
            },
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate
        stream.time_base = time_base
        stream.codec_context.thread_count = 1
        index = 0
        for rgb in pictures:
            # BT.601 limited, like swscale; uint8 already (asarray makes no copy), as typed
            yuv = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), np.uint8)
            for _ in range(gop * gops_each):
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                frame.pts, frame.time_base = index, time_base
                container.mux(stream.encode(frame))
                index += 1
        container.mux(stream.encode(None))
    return path


KEYFRAMES = Sampling("keyframes")


def keyframes(
    path: Path,
    stream_id: str,
    sampling: Sampling = KEYFRAMES,
    guard: GuardSettings = DEFAULT_GUARD,
) -> Iterator[Frame]:
    """The clip's sampled frames as production reads them (keyframes by default), left
    out of the service's metrics."""
    with open_source(str(path)) as container:
        stream = video_stream(container, str(path))
        yield from sample_frames(container, stream, stream_id, sampling, guard=guard, metered=False)


# -- footage -------------------------------------------------------------------------------

FOOTAGE_SIZE = "640x360"
FOOTAGE_FPS = 4
FOOTAGE_GOP = 2  # a keyframe every 0.5 s: two looks per second of footage

LAVFI_SOURCES = (
    ("mandelbrot", "mandelbrot=s={size}:r={fps}"),
    ("life", "life=s={size}:r={fps}:mold=10:ratio=0.1:death_color=#202020:life_color=#c0ffc0"),
    ("cellauto", "cellauto=s={size}:r={fps}:rule=110"),
    ("testsrc2", "testsrc2=s={size}:r={fps}"),
    ("gradients", "gradients=s={size}:r={fps}:speed=0.02"),
    ("sierpinski", "sierpinski=s={size}:r={fps}"),
    ("smptehdbars", "smptehdbars=s={size}:r={fps}"),
)
"""FFmpeg's generated video sources (all in Debian 12's ffmpeg 5.1)."""

ZOOMPAN = (
    "scale=1280:720:force_original_aspect_ratio=increase,crop=1280:720,"
    "zoompan=z='1.25+0.25*sin(on/37)':x='(iw-iw/zoom)*(0.5+0.5*sin(on/53))'"
    ":y='(ih-ih/zoom)*(0.5+0.5*cos(on/71))':d=1:s=1280x720:fps={fps},format=yuv420p"
)


@dataclass(frozen=True, slots=True)
class Footage:
    """A benign clip; ``source`` names the picture it pans over (not a negative for it)."""

    name: str
    path: Path
    source: str | None
    seconds: float
    sampling: Sampling = KEYFRAMES


@dataclass(frozen=True, slots=True)
class FootageJob:
    footage: Footage
    argv: tuple[str, ...]


def _x264(seconds: float) -> list[str]:
    gop = FOOTAGE_GOP
    return [
        "-t",
        f"{seconds:g}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-threads",
        "1",
        "-pix_fmt",
        "yuv420p",
        "-x264-params",
        f"keyint={gop}:min-keyint={gop}:scenecut=0",
    ]


def footage_jobs(cache: Path, seconds: float, pictures: Sequence[Picture]) -> list[FootageJob]:
    """``seconds`` of generated footage: half FFmpeg's synthetic sources, half slow
    zooms and pans over the pictures. Files are cached in ``cache`` by their command."""
    half = seconds / 2
    lavfi = [(name, half / len(LAVFI_SOURCES)) for name, _ in LAVFI_SOURCES]
    pans = [(p, half / len(pictures)) for p in pictures] if pictures else []
    if not pans:
        lavfi = [(name, seconds / len(LAVFI_SOURCES)) for name, _ in LAVFI_SOURCES]
    jobs = []
    spec = dict(LAVFI_SOURCES)
    for name, length in lavfi:
        source = spec[name].format(size=FOOTAGE_SIZE, fps=FOOTAGE_FPS)
        argv = ["-f", "lavfi", "-i", source, *_x264(length)]
        jobs.append(_job(cache, name, None, length, argv))
    for picture, length in pans:
        argv = [
            "-loop",
            "1",
            "-framerate",
            str(FOOTAGE_FPS),
            "-i",
            str(picture.path),
            "-vf",
            ZOOMPAN.format(fps=FOOTAGE_FPS),
            *_x264(length),
        ]
        jobs.append(_job(cache, f"pan-{picture.name}", picture.name, length, argv))
    return jobs


def _job(cache: Path, name: str, source: str | None, seconds: float, argv: list[str]) -> FootageJob:
    digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()[:10]
    path = cache / f"{name}-{round(seconds)}s-{digest}.mp4"
    return FootageJob(Footage(name, path, source, seconds), tuple(argv))


def make_footage(job: FootageJob) -> Footage:
    """Run FFmpeg for ``job`` unless its file is already cached."""
    path = job.footage.path
    if path.exists():
        return job.footage
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise StreamguardError("footage needs the ffmpeg command (Debian: apt-get install ffmpeg)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *job.argv, str(partial)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1:] or ["no message"]
        raise StreamguardError(f"ffmpeg failed for footage '{job.footage.name}': {reason[0]}")
    os.replace(partial, path)
    return job.footage
