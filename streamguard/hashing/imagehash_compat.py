"""64-bit pHash and dHash, bit-for-bit equal to ``imagehash.phash`` / ``imagehash.dhash``.

Both libraries reduce the image with PIL's Lanczos filter on an 8-bit grey image;
doing exactly that (and the same SciPy DCT) is what makes existing imagehash
hash lists importable unchanged. The input is the grey image imagehash would
see, ``Image.convert("L")`` for pictures and full-range luma for video.
"""

import numpy as np
import scipy.fftpack
from PIL import Image


def _reduce(luma: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(luma), mode="L")
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))


def phash(luma: np.ndarray) -> bytes:
    """8 bytes: low-frequency 8x8 DCT coefficients of a 32x32 reduction above their median."""
    pixels = _reduce(luma, 32, 32)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:8, :8]
    return np.packbits(low > np.median(low)).tobytes()


def dhash(luma: np.ndarray) -> bytes:
    """8 bytes: is each pixel of a 9x8 reduction brighter than its left neighbour."""
    pixels = _reduce(luma, 9, 8)
    return np.packbits(pixels[:, 1:] > pixels[:, :-1]).tobytes()
