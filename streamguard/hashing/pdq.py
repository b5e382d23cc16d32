"""PDQ (256 bit) through Meta's reference C++ in the ``pdqhash`` package."""

import numpy as np
import pdqhash
from numpy.lib.stride_tricks import as_strided

from streamguard.hashing.preprocess import PDQ_MAX_SIDE, fit_within

MIN_QUALITY = 50
"""Below this the PDQ authors advise not to match: flat, black or blurred frames."""


def pdq_hash(luma: np.ndarray) -> tuple[bytes, int]:
    """Return the 32-byte PDQ hash (byte order of its hex form) and its quality 0..100.

    ``pdqhash`` only takes RGB, which it turns into grey with weights summing to
    one; the luma seen three times through a zero-stride view hashes exactly
    the luma, without copying it. (Cython asks for a writable buffer; pdqhash
    only reads it.)
    """
    small = np.ascontiguousarray(fit_within(luma, PDQ_MAX_SIDE))
    grey_rgb = as_strided(
        small, shape=(*small.shape, 3), strides=(*small.strides, 0), writeable=True
    )
    bits, quality = pdqhash.compute(grey_rgb)
    return np.packbits(bits.astype(np.uint8)).tobytes(), int(quality)
