"""Still pictures (``hash``, ``blocklist add-image``, ``eval``'s entries), read and hashed
as the reference libraries read and hash them.

Their hashes go into lists that other tools share, so they are the references' bit for
bit: PDQ is ``pdqhash.compute(np.asarray(Image.open(path).convert("RGB")))``, pHash and
dHash are imagehash's, which reads ``convert("L")``. Neither applies EXIF orientation.
Hashing PIL's grey pre-scaled to 640 px, as video frames are hashed, was off the
reference PDQ on 31% of 720 pictures made from 40 real photographs, by up to 16 bits
(bench/bench_pictures.py, docs/hashing.md).
"""

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from streamguard.errors import MediaTooLarge, SourceError
from streamguard.hashing import MAX_SIDE, FrameHash, hash_luma
from streamguard.hashing.pdq import pdq_hash_rgb
from streamguard.hashing.preprocess import Luma


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture as each reference reads it: ``rgb`` is PIL's ``convert("RGB")`` (rows x
    columns x 3, uint8, possibly a view), ``luma`` its ``convert("L")``."""

    rgb: np.ndarray
    luma: Luma

    @property
    def shape(self) -> tuple[int, int]:
        return self.luma.shape

    def crop(self, rows: slice, cols: slice) -> "Picture":
        """The part of the picture in ``rows`` and ``cols``, what either reference would
        read from a file holding only that part."""
        return Picture(
            self.rgb[rows, cols], Luma(np.ascontiguousarray(self.luma.pixels[rows, cols]))
        )

    def mirrored(self) -> "Picture":
        return self.crop(slice(None), slice(None, None, -1))


def load_picture(path: str | Path) -> Picture:
    """Read a picture file; SourceError if it is missing, unreadable or larger than
    MAX_SIDE on a side (checked from its header, before decoding)."""
    try:
        return _read(path, str(path), MAX_SIDE * MAX_SIDE, still_only=False)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None


def read_picture(data: bytes, name: str, max_pixels: int) -> Picture:
    """A picture from its encoded bytes (an upload), refused as ``MediaTooLarge`` if it
    is larger than MAX_SIDE on a side or ``max_pixels`` in all, from its header, before
    decoding (a decompression bomb is a few KB that declare gigapixels). An animated
    picture is refused as ``AnimatedPicture``: its first frame is not all it shows."""
    return _read(io.BytesIO(data), name, max_pixels, still_only=True)


class AnimatedPicture(SourceError):
    """A picture of several frames (GIF, APNG, WebP): a video to scan, not a picture."""


def _read(source: str | Path | BinaryIO, name: str, max_pixels: int, still_only: bool) -> Picture:
    try:
        with Image.open(source) as image:
            if still_only and getattr(image, "is_animated", False):
                raise AnimatedPicture(f"{name}: an animated picture")
            width, height = image.size
            if max(image.size) > MAX_SIDE:
                raise MediaTooLarge(f"{name}: image is {width}x{height}, larger than {MAX_SIDE} px")
            if width * height > max_pixels:
                raise MediaTooLarge(
                    f"{name}: image is {width}x{height}, more than {max_pixels:,} pixels"
                )
            return Picture(np.asarray(image.convert("RGB")), Luma(np.asarray(image.convert("L"))))
    except Image.DecompressionBombError:  # PIL's own limit, above ours: before our check
        raise MediaTooLarge(f"{name}: image is larger than {MAX_SIDE} px on a side") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # SyntaxError and ValueError: what some of PIL's decoders raise on corrupt data
        if isinstance(exc, FileNotFoundError):
            raise
        raise SourceError(f"{name}: not a readable image ({exc.__class__.__name__})") from None


def hash_picture(picture: Picture, algos: Iterable[str]) -> list[FrameHash]:
    """Hash a picture with each of ``algos``, as the reference libraries would."""
    hashes = []
    for algo in algos:
        if algo == "pdq":
            digest, quality = pdq_hash_rgb(picture.rgb)
            hashes.append(FrameHash(algo, digest, quality))
        else:
            hashes += hash_luma(picture.luma, [algo])
    return hashes
