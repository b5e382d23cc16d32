"""Still pictures (``hash``, ``blocklist add-image``, ``eval``'s entries), read and hashed
as the reference libraries read and hash them.

Their hashes go into lists that other tools share, so they are the references' bit for
bit: PDQ is ``pdqhash.compute(np.asarray(Image.open(path).convert("RGB")))``, pHash and
dHash are imagehash's, which reads ``convert("L")``. Neither applies EXIF orientation.
Hashing PIL's grey pre-scaled to 640 px, as video frames are hashed, was off the
reference PDQ on 31% of 720 pictures made from 40 real photographs, by up to 16 bits
(bench/bench_pictures.py, docs/hashing.md).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from streamguard.errors import SourceError
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
        with Image.open(path) as image:
            if max(image.size) > MAX_SIDE:
                width, height = image.size
                raise SourceError(f"{path}: image is {width}x{height}, larger than {MAX_SIDE} px")
            return Picture(np.asarray(image.convert("RGB")), Luma(np.asarray(image.convert("L"))))
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise SourceError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


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
