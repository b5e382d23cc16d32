"""Pictures and video frames against the reference PDQ: bits from ``pdqhash.compute`` on
PIL's RGB, and cost per picture.

Pictures: ``--photos`` directories' pictures as they are, and each of them (and the
three photos in tests/data/photos) made into every size and kind by
tests/support/photos.py. Each is hashed by the picture path (hashing/picture.py, what
``hash`` and ``blocklist add-image`` use since issue 17) and by the frame path it took
before (PIL's grey, pre-scaled to 640 px), and its pHash/dHash compared with imagehash's.

Frames: each picture made at video sizes is encoded into an all-keyframe H.264 clip
(evaluation/corpus.py ``encode_clip``); each decoded keyframe is hashed by the frame path
(``frame_luma``, what the sampler hands on) and by the reference on its RGB
(``to_ndarray("rgb24")``). "luma, full size" hashes the same luma without the pre-scale,
which separates the pre-scale's drift from the luma-versus-RGB one.
"""

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import av
import imagehash
import numpy as np
import pdqhash
from PIL import Image

from bench import parse
from bench.report import table
from streamguard.evaluation.corpus import Encoding, encode_clip
from streamguard.hashing import IMAGE_SUFFIXES, hash_luma
from streamguard.hashing.picture import hash_picture, load_picture
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.sampler import frame_luma
from tests.support.photos import SIZES, derived_pictures, photos

FRAME_SIZES = ((640, 360), (1280, 720), (1920, 1080), (3840, 2160))
SIZE_CLASSES = ((640, "long side <= 640 px"), (1920, "641-1920 px"), (8192, "> 1920 px"))
SMOKE = {"photos": [], "sizes": ((96, 64), (320, 240)), "frame_sizes": ((320, 180),)}


def bits_apart(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def reference(rgb: np.ndarray) -> bytes:
    bits, _ = pdqhash.compute(rgb)
    return np.packbits(bits.astype(np.uint8)).tobytes()


def timed(function: Callable[[Path], bytes], path: Path, rounds: int) -> tuple[bytes, float]:
    """``function(path)``, and the least time it took in ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = function(path)
        times.append(time.perf_counter() - started)
    return result, min(times)


def picture_reference(path: Path) -> bytes:
    with Image.open(path) as image:
        return reference(np.asarray(image.convert("RGB")))


def frame_path(path: Path) -> bytes:
    """How pictures were hashed before issue 17: the grey picture, as video frames are."""
    with Image.open(path) as image:
        return hash_luma(Luma(np.asarray(image.convert("L"))), ["pdq"])[0].digest


def picture_path(path: Path) -> bytes:
    return hash_picture(load_picture(path), ["pdq"])[0].digest


def imagehash_equal(path: Path) -> bool:
    ours = [h.hex for h in hash_picture(load_picture(path), ["phash", "dhash"])]
    with Image.open(path) as image:
        return ours == [str(imagehash.phash(image)), str(imagehash.dhash(image))]


def size_class(path: Path) -> str:
    with Image.open(path) as image:
        side = max(image.size)
    return next(name for limit, name in SIZE_CLASSES if side <= limit)


def measure_pictures(paths: list[Path], rounds: int) -> list[str]:
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in paths:
        expected, reference_s = timed(picture_reference, path, rounds)
        before, before_s = timed(frame_path, path, rounds)
        after, after_s = timed(picture_path, path, rounds)
        for row in (size_class(path), "all"):
            figures = rows[row]
            figures["frame path bits"].append(bits_apart(before, expected))
            figures["picture path bits"].append(bits_apart(after, expected))
            figures["imagehash equal"].append(imagehash_equal(path))
            figures["frame path s"].append(before_s)
            figures["picture path s"].append(after_s)
            figures["reference s"].append(reference_s)
    header = ["pictures", "count", "frame path: bit-exact", "mean / max bits"]
    header += ["picture path: bit-exact", "max bits", "pHash+dHash = imagehash"]
    header += ["ms: frame path", "picture path", "pdqhash.compute"]
    lines = []
    for name in [*(name for _, name in SIZE_CLASSES if name in rows), "all"]:
        figures = rows[name]
        before, after = np.array(figures["frame path bits"]), np.array(figures["picture path bits"])
        lines.append(
            [
                name,
                len(before),
                f"{np.mean(before == 0):.0%}",
                f"{before.mean():.1f} / {before.max()}",
                f"{np.mean(after == 0):.0%}",
                int(after.max()),
                f"{np.mean(figures['imagehash equal']):.0%}",
                *(1000 * float(np.mean(figures[t])) for t in ("frame path s", "picture path s")),
                1000 * float(np.mean(figures["reference s"])),
            ]
        )
    return table(header, lines)


def decoded_keyframes(clip: Path) -> list[av.VideoFrame]:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        return list(container.decode(stream))


def measure_frames(
    sources: list[Path], frame_sizes: tuple[tuple[int, int], ...], work: Path
) -> list[str]:
    lines = []
    for width, height in frame_sizes:
        pictures = []
        for source in sources:
            with Image.open(source) as image:
                resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
                pictures.append(np.asarray(resized))
        clip = encode_clip(work / f"{width}x{height}.mp4", pictures, 40_000_000, 1, Encoding())
        fast, full = [], []
        for frame in decoded_keyframes(clip):
            expected = reference(frame.to_ndarray(format="rgb24"))
            luma = frame_luma(frame)
            fast.append(bits_apart(hash_luma(luma, ["pdq"])[0].digest, expected))
            grey = np.repeat(luma.full_range()[:, :, None], 3, axis=2)
            full.append(bits_apart(reference(grey), expected))
        fast_bits, full_bits = np.array(fast), np.array(full)
        lines.append(
            [
                f"{width}x{height}",
                len(fast_bits),
                f"{np.mean(fast_bits == 0):.0%}",
                f"{fast_bits.mean():.1f}",
                int(np.percentile(fast_bits, 95)),
                int(fast_bits.max()),
                f"{full_bits.mean():.1f} / {full_bits.max()}",
            ]
        )
    header = ["keyframes", "count", "frame path: bit-exact", "mean bits", "p95", "max"]
    return table([*header, "luma, full size: mean / max"], lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--photos", type=Path, action="append", default=[], help="a directory of photos"
    )
    parser.add_argument("--rounds", type=int, default=1, help="timings: best of this many")
    parser.add_argument("--sizes", default=SIZES, help=argparse.SUPPRESS)
    parser.add_argument("--frame-sizes", default=FRAME_SIZES, help=argparse.SUPPRESS)
    args = parse(parser, SMOKE)
    sources = photos() + sorted(
        path
        for directory in args.photos
        for path in directory.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES
    )
    with tempfile.TemporaryDirectory() as work:
        made = [p for s in sources for p in derived_pictures(s, Path(work), args.sizes)]
        print(f"{len(sources)} photos, {len(made)} pictures made of them (with the photos)")
        print("\n".join(measure_pictures(made, args.rounds)))
        print(f"\n{len(sources)} photos as keyframes of H.264 clips")
        print("\n".join(measure_frames(sources, args.frame_sizes, Path(work))))


if __name__ == "__main__":
    main()
