"""64-bit pHash and dHash, bit-for-bit equal to ``imagehash.phash`` / ``imagehash.dhash``.

Both libraries reduce the image with PIL's Lanczos filter on an 8-bit grey image;
doing exactly that (and the same SciPy DCT) is what makes existing imagehash
hash lists importable unchanged. The input is the grey image imagehash would
see, ``Image.convert("L")`` for pictures and full-range luma for video.

Each hash also counts its *stable* bits: those the picture decides rather than
rounding. A flat picture, noise, a fade to black, a gradient in any direction
(pHash) all leave most comparisons to within rounding of a tie; their bits are
set by noise and would match by chance, so such hashes are not matched
(``MIN_STABLE_BITS``; docs/hashing.md has the measurements).
"""

import numpy as np
import scipy.fftpack
from PIL import Image

PHASH_MARGIN = 4.0
"""A pHash bit is stable if its DCT coefficient is this far from the median, in
orthonormal DCT units: 14 times the noise (0.29) that rounding the 32x32 picture
to whole grey levels puts into each coefficient."""

DHASH_MARGIN = 2
"""A dHash bit is stable if its two pixels differ by 2 grey levels or more: the
9x8 picture is rounded to whole levels, so a difference of 1 can be rounding."""

# scipy's unnormalised DCT-II is the orthonormal one divided by sqrt(1 / 4N) for
# coefficient 0 and by sqrt(1 / 2N) for the others (N = 32); per 2-D coefficient, the
# product of its row's and its column's factor.
_FACTORS = np.array([np.sqrt(1 / 128)] + [np.sqrt(1 / 64)] * 7)
_ORTHONORMAL = np.outer(_FACTORS, _FACTORS)


def _reduce(luma: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(luma), mode="L")
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))


def phash(luma: np.ndarray) -> tuple[bytes, int]:
    """8 bytes: low-frequency 8x8 DCT coefficients of a 32x32 reduction above their
    median; and how many of them are ``PHASH_MARGIN`` or more from it."""
    pixels = _reduce(luma, 32, 32)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:8, :8]
    median = np.median(low)
    stable = np.abs(low - median) * _ORTHONORMAL >= PHASH_MARGIN
    return np.packbits(low > median).tobytes(), int(stable.sum())


def dhash(luma: np.ndarray) -> tuple[bytes, int]:
    """8 bytes: is each pixel of a 9x8 reduction brighter than its left neighbour; and
    how many differ from it by ``DHASH_MARGIN`` or more."""
    pixels = _reduce(luma, 9, 8).astype(np.int16)
    steps = pixels[:, 1:] - pixels[:, :-1]
    return np.packbits(steps > 0).tobytes(), int((np.abs(steps) >= DHASH_MARGIN).sum())
