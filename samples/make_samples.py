"""Generate streamguard's synthetic sample images and clips, deterministically.

Everything made here is a benign, procedurally drawn stand-in: the "flagged" images are
geometric test cards that the sample blocklist pretends are known material.

    python samples/make_samples.py                      # (re)write streamguard/samples/
    python samples/make_samples.py --bench-clip X.mp4   # only a 60 s 720p clip for benchmarks

They are written into the package (streamguard/samples/), whose data the wheel ships:
`streamguard demo` and `streamguard eval --quick` read them wherever streamguard is
installed.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import imagehash
import numpy as np
import pdqhash
from PIL import Image, ImageDraw, ImageFont

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "streamguard" / "samples"
IMAGE_SIZE = (1280, 720)
LABEL = "STREAMGUARD TEST IMAGE - NOT REAL CONTENT"
MIN_PDQ_QUALITY = 80
MIN_PDQ_DISTANCE = 100
MIN_PHASH_DISTANCE = 20
SUPERSAMPLE = 2
CRF = 28

Rgb = tuple[int, int, int]
Drawer = Callable[[np.random.Generator], Image.Image]


# --------------------------------------------------------------------------- images


def _canvas(background: Rgb) -> tuple[Image.Image, ImageDraw.ImageDraw, int, int]:
    """A supersampled canvas (downscaled by `_finish`) with its size."""
    w, h = IMAGE_SIZE[0] * SUPERSAMPLE, IMAGE_SIZE[1] * SUPERSAMPLE
    img = Image.new("RGB", (w, h), background)
    return img, ImageDraw.Draw(img), w, h


def _finish(img: Image.Image) -> Image.Image:
    """Downscale a supersampled canvas to IMAGE_SIZE (anti-aliases the shapes)."""
    return img.resize(IMAGE_SIZE, Image.Resampling.LANCZOS)


def _draw_rings(rng: np.random.Generator) -> Image.Image:
    """Off-centre concentric rings crossed by a diagonal band."""
    img, draw, w, h = _canvas((18, 92, 96))
    cx, cy = int(w * 0.32), int(h * 0.46)
    palette: list[Rgb] = [(240, 120, 30), (250, 236, 200), (200, 30, 60), (25, 35, 90)]
    for k in range(14, 0, -1):
        r = k * 90 * SUPERSAMPLE // 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=palette[k % len(palette)])
    band = [(w * 0.62, 0), (w * 0.80, 0), (w * 0.42, h), (w * 0.24, h)]
    draw.polygon(band, fill=(250, 210, 40))
    return _finish(img)


def _draw_mondrian(rng: np.random.Generator) -> Image.Image:
    """Mondrian-like colour fields from seeded recursive splits."""
    img, draw, w, h = _canvas((245, 242, 230))
    palette: list[Rgb] = [(210, 30, 35), (25, 60, 160), (245, 200, 20), (245, 242, 230)]
    line = 16 * SUPERSAMPLE

    def split(x0: int, y0: int, x1: int, y1: int, depth: int) -> None:
        if depth == 0 or min(x1 - x0, y1 - y0) < 260 * SUPERSAMPLE:
            colour = palette[int(rng.integers(len(palette)))]
            draw.rectangle((x0, y0, x1, y1), fill=colour, outline=(10, 10, 10), width=line)
            return
        if (x1 - x0) / (y1 - y0) > rng.uniform(0.7, 1.4):
            xs = int(rng.uniform(0.3, 0.7) * (x1 - x0)) + x0
            split(x0, y0, xs, y1, depth - 1)
            split(xs, y0, x1, y1, depth - 1)
        else:
            ys = int(rng.uniform(0.3, 0.7) * (y1 - y0)) + y0
            split(x0, y0, x1, ys, depth - 1)
            split(x0, ys, x1, y1, depth - 1)

    split(0, 0, w - 1, h - 1, 5)
    return _finish(img)


def _draw_plasma(rng: np.random.Generator) -> Image.Image:
    """Posterised sinusoidal interference pattern (flat bands keep the PNG small)."""
    w, h = IMAGE_SIZE[0] * SUPERSAMPLE, IMAGE_SIZE[1] * SUPERSAMPLE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / SUPERSAMPLE
    field = np.zeros((h, w), np.float32)
    for _ in range(4):
        fx, fy = rng.uniform(-0.012, 0.012, size=2)
        field += np.sin(fx * x + fy * y + rng.uniform(0, 2 * math.pi))
    cx, cy = rng.uniform(0, IMAGE_SIZE[0]), rng.uniform(0, IMAGE_SIZE[1])
    field += np.sin(np.hypot(x - cx, y - cy) * 0.02)
    palette = np.array(
        [
            (40, 10, 70),
            (110, 20, 120),
            (200, 40, 140),
            (250, 120, 90),
            (250, 210, 80),
            (150, 230, 90),
        ],
        np.uint8,
    )
    levels = np.digitize(field, np.quantile(field, np.linspace(0, 1, len(palette) + 1)[1:-1]))
    return _finish(Image.fromarray(palette[levels]))


def _draw_triangles(rng: np.random.Generator) -> Image.Image:
    """Low-poly mosaic of seeded-colour triangles on a jittered grid."""
    img, draw, w, h = _canvas((0, 0, 0))
    cols, rows = 9, 5
    xs = np.linspace(0, w, cols + 1)
    ys = np.linspace(0, h, rows + 1)
    jitter = rng.uniform(-0.3, 0.3, size=(rows + 1, cols + 1, 2))
    jitter[[0, -1], :, 1] = 0
    jitter[:, [0, -1], 0] = 0
    pts = np.stack(np.meshgrid(xs, ys), axis=-1) + jitter * [w / cols, h / rows]
    palette: list[Rgb] = [(20, 140, 200), (10, 70, 120), (240, 240, 240), (30, 180, 150)]
    for r, c in itertools.product(range(rows), range(cols)):
        a, b, d, e = pts[r, c], pts[r, c + 1], pts[r + 1, c], pts[r + 1, c + 1]
        for tri in ([a, b, e], [a, e, d]):
            colour = palette[int(rng.integers(len(palette)))]
            draw.polygon([tuple(p) for p in tri], fill=colour)
    return _finish(img)


def _draw_dots(rng: np.random.Generator) -> Image.Image:
    """Control: grid of seeded-size dots on a pale background."""
    img, draw, w, h = _canvas((236, 230, 214))
    step = 110 * SUPERSAMPLE
    palette: list[Rgb] = [(60, 120, 90), (200, 90, 60), (50, 70, 130), (180, 150, 40)]
    for gy, gx in itertools.product(range(h // step + 1), range(w // step + 1)):
        r = int(rng.uniform(0.15, 0.48) * step)
        cx, cy = gx * step + step // 2, gy * step + step // 2
        colour = palette[int(rng.integers(len(palette)))]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    return _finish(img)


def _draw_skyline(rng: np.random.Generator) -> Image.Image:
    """Control: city skyline with lit windows against a banded sunset sky."""
    img, draw, w, h = _canvas((0, 0, 0))
    sky: list[Rgb] = [(40, 30, 90), (110, 50, 120), (200, 80, 90), (245, 150, 70), (250, 210, 120)]
    for i, colour in enumerate(sky):
        draw.rectangle((0, i * h // 8, w, (i + 1) * h // 8 if i < len(sky) - 1 else h), fill=colour)
    x = 0
    while x < w:
        bw = int(rng.uniform(90, 220) * SUPERSAMPLE)
        top = int(rng.uniform(0.25, 0.65) * h)
        draw.rectangle((x, top, x + bw, h), fill=(25, 25, 35))
        for wy in range(top + 24 * SUPERSAMPLE, h - 30 * SUPERSAMPLE, 34 * SUPERSAMPLE):
            for wx in range(x + 14 * SUPERSAMPLE, x + bw - 24 * SUPERSAMPLE, 30 * SUPERSAMPLE):
                if rng.random() < 0.45:
                    draw.rectangle(
                        (wx, wy, wx + 14 * SUPERSAMPLE, wy + 18 * SUPERSAMPLE), fill=(250, 220, 120)
                    )
        x += bw + int(rng.uniform(4, 30) * SUPERSAMPLE)
    return _finish(img)


FLAGGED_DRAWERS: tuple[Drawer, ...] = (_draw_rings, _draw_mondrian, _draw_plasma, _draw_triangles)
CONTROL_DRAWERS: tuple[Drawer, ...] = (_draw_dots, _draw_skyline)


def _add_label(img: Image.Image, subtitle: str) -> Image.Image:
    """Draw the "not real content" banner across the bottom of the image."""
    out = img.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    w, h = out.size
    draw.rectangle((0, h - 130, w, h - 20), fill=(0, 0, 0, 215))
    big = ImageFont.load_default(size=46)
    small = ImageFont.load_default(size=26)
    draw.text((w // 2, h - 100), LABEL, font=big, fill=(255, 255, 255), anchor="mt")
    draw.text((w // 2, h - 50), subtitle, font=small, fill=(255, 230, 0), anchor="mt")
    return out


def pdq(img: Image.Image) -> tuple[np.ndarray, int]:
    """PDQ hash bits (256 x uint8 0/1) and quality of an image."""
    bits, quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return bits.astype(np.uint8), int(quality)


def make_images(out_dir: Path) -> dict[str, Path]:
    """Write the flagged stand-ins and controls; check quality and separation. Name -> path."""
    specs: list[tuple[str, Path, Drawer, str]] = []
    for i, drawer in enumerate(FLAGGED_DRAWERS, 1):
        note = f"flagged_{i:02d}: synthetic stand-in listed in the sample blocklist"
        specs.append((f"flagged_{i:02d}", out_dir / "flagged", drawer, note))
    for i, drawer in enumerate(CONTROL_DRAWERS, 1):
        note = f"control_{i:02d}: benign control image, not in any blocklist"
        specs.append((f"control_{i:02d}", out_dir / "images", drawer, note))

    paths: dict[str, Path] = {}
    images: dict[str, Image.Image] = {}
    for seed, (name, folder, drawer, note) in enumerate(specs, 11):
        img = _add_label(drawer(np.random.default_rng(seed)), note)
        quality = pdq(img)[1]
        assert quality >= MIN_PDQ_QUALITY, f"{name}: PDQ quality {quality} < {MIN_PDQ_QUALITY}"
        folder.mkdir(parents=True, exist_ok=True)
        paths[name] = folder / f"{name}.png"
        img.save(paths[name], compress_level=9)
        images[name] = img
    for (a, ia), (b, ib) in itertools.combinations(images.items(), 2):
        d_pdq = int(np.count_nonzero(pdq(ia)[0] != pdq(ib)[0]))
        d_phash = imagehash.phash(ia) - imagehash.phash(ib)
        assert d_pdq > MIN_PDQ_DISTANCE, f"{a} vs {b}: PDQ distance {d_pdq}"
        assert d_phash > MIN_PHASH_DISTANCE, f"{a} vs {b}: pHash distance {d_phash}"
    return paths


# --------------------------------------------------------------------------- clips


def _fractal_noise(
    rng: np.random.Generator, w: int, h: int, cells: int, octaves: int
) -> np.ndarray:
    """Multi-octave value noise in [0, 1], float32 (h, w); `cells` = coarsest grid width."""
    total = np.zeros((h, w), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        gw = cells * 2**octave
        gh = max(2, round(gw * h / w))
        grid = rng.random((gh, gw), dtype=np.float32)
        total += amplitude * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.5
    total -= total.min()
    return total / total.max()


# Fraction of the terrain below each colour stop (water ~30 %, snow ~6 %).
_TERRAIN_QUANTILES = [0.0, 0.2, 0.3, 0.33, 0.37, 0.6, 0.82, 0.94, 1.0]
_TERRAIN_COLOURS = np.array(
    [
        (18, 45, 100),
        (35, 85, 150),
        (70, 140, 175),
        (205, 195, 145),
        (95, 150, 65),
        (45, 105, 50),
        (115, 105, 95),
        (235, 235, 240),
        (250, 250, 252),
    ],
    np.float32,
)


@dataclass(frozen=True)
class _Sprite:
    """A soft-edged object; x0/y0 are frame fractions, speed is frame widths per second."""

    rgb: np.ndarray
    alpha: np.ndarray
    x0: float
    y0: float
    speed: float
    bob_period: float
    bob_phase: float


class Scene:
    """Aerial-landscape flyover: a pre-rendered terrain texture under a drifting cloud layer,
    a few soft balloon-like objects and a mild brightness drift. Frames are pure functions
    of (seed, size, frame index)."""

    TEXTURE_SCALE = 2.5  # texture size relative to the output frame
    SPRITES = 3

    def __init__(self, width: int, height: int, fps: int, seed: int) -> None:
        self.width, self.height, self.fps = width, height, fps
        rng = np.random.default_rng(seed)
        tw, th = round(width * self.TEXTURE_SCALE), round(height * self.TEXTURE_SCALE)
        height_map = _fractal_noise(rng, tw, th, cells=4, octaves=7)
        stops = np.quantile(height_map, _TERRAIN_QUANTILES)
        rgb = np.stack([np.interp(height_map, stops, _TERRAIN_COLOURS[:, c]) for c in range(3)], -1)
        land = np.maximum(height_map, stops[2])
        gy, gx = np.gradient(land * (th / 6.0))
        shade = np.clip(1.0 + 0.8 * (gx + gy), 0.55, 1.35)[..., None]
        self.terrain = np.clip(rgb * shade, 0, 255).astype(np.uint8)
        cloud = _fractal_noise(rng, tw, th, cells=3, octaves=4)
        self.cloud_alpha = (np.clip((cloud - 0.6) / 0.25, 0.0, 1.0) ** 1.5 * 0.75).astype(
            np.float32
        )
        self.white = np.full((height, width, 3), 255, np.uint8)
        self.phases = rng.uniform(0, 2 * math.pi, size=4)
        self.sprites = [self._make_sprite(rng) for _ in range(self.SPRITES)]

    def _make_sprite(self, rng: np.random.Generator) -> _Sprite:
        """A soft-edged, vertically shaded ellipse drifting across the frame."""
        rx = int(self.height * rng.uniform(0.04, 0.07))
        ry = int(rx * rng.uniform(1.1, 1.4))
        pad = max(4, rx // 2)
        size = (2 * (ry + pad) + 1, 2 * (rx + pad) + 1)
        alpha = np.zeros(size, np.float32)
        cv2.ellipse(alpha, (rx + pad, ry + pad), (rx, ry), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        alpha = cv2.GaussianBlur(alpha, (0, 0), pad / 2.5)
        colour = rng.uniform(60, 250, size=3).astype(np.float32)
        shading = np.linspace(1.15, 0.7, size[0], dtype=np.float32)[:, None, None]
        rgb = np.clip(colour * shading * np.ones((*size, 3), np.float32), 0, 255).astype(np.uint8)
        return _Sprite(
            rgb=rgb,
            alpha=alpha,
            x0=float(rng.random()),
            y0=float(rng.uniform(0.15, 0.7)),
            speed=float(rng.uniform(0.03, 0.08)),
            bob_period=float(rng.uniform(3, 6)),
            bob_phase=float(rng.uniform(0, 2 * math.pi)),
        )

    def _view(self, t: float, parallax: float) -> np.ndarray:
        """Inverse affine map (frame -> texture) for the camera at time t."""
        th, tw = self.terrain.shape[:2]
        p = self.phases
        scale = 1.2 + 0.2 * math.sin(2 * math.pi * t / 23.0 + p[0])
        margin_x = tw / 2 - 1.4 * self.width / 2
        margin_y = th / 2 - 1.4 * self.height / 2
        cx = tw / 2 + 0.9 * margin_x * math.sin(2 * math.pi * t / 47.0 * parallax + p[1])
        cy = th / 2 + 0.9 * margin_y * math.sin(2 * math.pi * t / 37.0 * parallax + p[2])
        return np.array(
            [
                [scale, 0.0, cx - scale * self.width / 2],
                [0.0, scale, cy - scale * self.height / 2],
            ]
        )

    def render(self, index: int) -> np.ndarray:
        """RGB uint8 frame (h, w, 3) for frame `index`."""
        t = index / self.fps
        size = (self.width, self.height)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        frame = cv2.warpAffine(
            self.terrain, self._view(t, 1.0), size, flags=flags, borderMode=cv2.BORDER_REFLECT
        )
        for sprite in self.sprites:
            self._blend_sprite(frame, sprite, t)
        clouds = cv2.warpAffine(
            self.cloud_alpha, self._view(t, 1.6), size, flags=flags, borderMode=cv2.BORDER_REFLECT
        )
        frame = cv2.blendLinear(frame, self.white, 1.0 - clouds, clouds)
        gain = 1.0 + 0.06 * math.sin(2 * math.pi * t / 7.0 + self.phases[3])
        return cv2.convertScaleAbs(frame, alpha=gain)

    def _blend_sprite(self, frame: np.ndarray, sprite: _Sprite, t: float) -> None:
        """Alpha-blend one sprite into `frame` in place (clipped at the edges)."""
        sh, sw = sprite.alpha.shape
        x = int(((sprite.x0 + sprite.speed * t) * self.width) % (self.width + sw)) - sw
        bob = 0.03 * math.sin(2 * math.pi * t / sprite.bob_period + sprite.bob_phase)
        y = int((sprite.y0 + bob) * self.height)
        fx0, fx1 = max(x, 0), min(x + sw, self.width)
        fy0, fy1 = max(y, 0), min(y + sh, self.height)
        if fx0 >= fx1 or fy0 >= fy1:
            return
        sub = (slice(fy0 - y, fy1 - y), slice(fx0 - x, fx1 - x))
        a = sprite.alpha[sub]
        region = frame[fy0:fy1, fx0:fx1]
        region[:] = cv2.blendLinear(region, sprite.rgb[sub], 1.0 - a, a)


def _insert_frame(image_path: Path, width: int, height: int, scale: float) -> np.ndarray:
    """The flagged image scaled to `scale` of the frame, centred on black (full frame at 1.0)."""
    img = cv2.cvtColor(cv2.imread(str(image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    w, h = round(width * scale), round(height * scale)
    if (img.shape[1], img.shape[0]) != (w, h):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    frame[y : y + h, x : x + w] = img
    return frame


def _frames(
    width: int,
    height: int,
    seconds: float,
    fps: int,
    seed: int,
    flagged: tuple[Path | str, float, float] | None,
    flagged_scale: float,
) -> Iterator[np.ndarray]:
    """RGB frames of the scene, with the flagged image shown for [start_s, end_s)."""
    scene = Scene(width, height, fps, seed)
    insert_range = range(0)
    insert = None
    if flagged is not None:
        image_path, start_s, end_s = flagged
        insert_range = range(round(start_s * fps), round(end_s * fps))
        insert = _insert_frame(Path(image_path), width, height, flagged_scale)
    for i in range(round(seconds * fps)):
        yield insert if insert is not None and i in insert_range else scene.render(i)


def make_clip(
    path: Path | str,
    width: int,
    height: int,
    seconds: float,
    fps: int = 30,
    gop_seconds: int = 2,
    flagged: tuple[Path | str, float, float] | None = None,
    flagged_scale: float = 1.0,
    seed: int = 0,
) -> Path:
    """Encode a synthetic H.264 clip (container from the suffix: .mp4, .flv, ...).

    Keyframes fall exactly every `gop_seconds` from pts 0 (no scene-cut keyframes, no
    B-frames). `flagged` =
    (image_path, start_s, end_s) shows that image for [start_s, end_s), scaled to
    `flagged_scale` of the frame and centred on black. Output is byte-identical across runs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gop = gop_seconds * fps
    time_base = Fraction(1, fps)
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={
                "crf": str(CRF),
                "preset": "medium",
                # No B-frames: pts == dts, so FLV (no edit lists) also starts at pts 0.
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
                "g": str(gop),
                "keyint_min": str(gop),
                "sc_threshold": "0",
                "threads": "1",
                "flags": "+bitexact",
            },
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.thread_count = 1
        frames = _frames(width, height, seconds, fps, seed, flagged, flagged_scale)
        for i, rgb in enumerate(frames):
            yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # BT.601 limited, like swscale
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = i, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_bench_clip(path: Path | str, seconds: float = 60.0) -> Path:
    """A clean 1280x720 30 fps clip with 2 s GOP, for benchmarks (not committed)."""
    return make_clip(path, 1280, 720, seconds, seed=99)


def make_samples(out_dir: Path = SAMPLES_DIR) -> list[Path]:
    """Write all sample images and clips under `out_dir`; return the written paths."""
    images = make_images(out_dir)
    write_blocklist(images, out_dir)
    clips = out_dir / "clips"
    window = (3.5, 4.5)  # contains the keyframe at t = 4.0 s
    written = [*images.values(), out_dir / "blocklist.csv"]
    # name, size, flagged stand-in shown over the window (and its scale), seed
    clip_specs = [
        ("clean_720p.mp4", (1280, 720), None, 1.0, 1),
        ("clean_360p.flv", (640, 360), None, 1.0, 2),
        ("flagged_720p.mp4", (1280, 720), "flagged_01", 1.0, 3),
        ("flagged_360p.flv", (640, 360), "flagged_02", 1.0, 4),
        ("flagged_letterbox_720p.mp4", (1280, 720), "flagged_03", 0.75, 5),
    ]
    for name, (width, height), flagged, scale, seed in clip_specs:
        shown = (images[flagged], *window) if flagged else None
        written.append(
            make_clip(
                clips / name, width, height, 10, flagged=shown, flagged_scale=scale, seed=seed
            )
        )
    return written


def write_blocklist(images: dict[str, Path], out_dir: Path) -> Path:
    """`blocklist.csv`: each flagged stand-in under every algorithm, hashed by streamguard."""
    from streamguard.hashing import ALGORITHMS
    from streamguard.hashing.picture import hash_picture, load_picture

    path = out_dir / "blocklist.csv"
    rows = ["algo,hash,id,list,category,label"]
    for name, image in sorted(images.items()):
        if not name.startswith("flagged_"):
            continue
        number = name.removeprefix("flagged_")
        label = f"stand-in flagged image {number} (synthetic test content)"
        for frame_hash in hash_picture(load_picture(image), ALGORITHMS):
            algo = frame_hash.algo
            rows.append(f"{algo},{frame_hash.hex},{name}-{algo},streamguard-samples,test,{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir", type=Path, default=SAMPLES_DIR, help="default: streamguard/samples/"
    )
    parser.add_argument(
        "--bench-clip",
        type=Path,
        metavar="PATH",
        help="only write a clean 60 s 1280x720 30 fps clip (2 s GOP) to PATH, for benchmarks",
    )
    args = parser.parse_args(argv)
    written = [make_bench_clip(args.bench_clip)] if args.bench_clip else make_samples(args.out_dir)
    for path in written:
        print(f"{path.stat().st_size:>10,d}  {path}")


if __name__ == "__main__":
    main()
