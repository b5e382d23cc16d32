"""PDQ (256 bit) through Meta's reference C++ in the ``pdqhash`` package."""

import numpy as np
import pdqhash

from streamguard.hashing.preprocess import PDQ_MAX_SIDE, fit_within

MIN_QUALITY = 50
"""Below this the PDQ authors advise not to match: flat, black or blurred frames."""


def pdq_hash(luma: np.ndarray) -> tuple[bytes, int]:
    """Return the 32-byte PDQ hash (byte order of its hex form) and its quality 0..100.

    ``pdqhash`` takes RGB and converts it to grey with weights that sum to one,
    so a grey image repeated on three channels hashes exactly its luma.
    """
    small = fit_within(luma, PDQ_MAX_SIDE)
    bits, quality = pdqhash.compute(np.repeat(small[:, :, None], 3, axis=2))
    return np.packbits(bits.astype(np.uint8)).tobytes(), int(quality)
