"""PDQ (256 bit) with Meta's reference C++, as compiled into the ``pdqhash`` package.

``pdqhash.compute`` only takes RGB and spends most of its time in Python-level
numpy code turning it into float grey, and more turning the hash into a list
of bits. Streamguard calls the package's compiled ``pdqHash256FromFloatLuma``
directly: the same reference code on the same input, bit-for-bit what
``pdqhash.compute`` returns (tested), at about half the cost. If a future
``pdqhash`` build does not export that symbol, ``pdqhash.compute`` is used
instead.

Two inputs: a video frame's luma, pre-scaled to 640 px (``pdq_hash``, the fast
path, a few bits from the reference), and a still picture's RGB at full size
with pdqhash's own grey weights (``pdq_hash_rgb``, the reference's hash bit for
bit, for the hashes that go into shared lists). docs/hashing.md gives both
figures.
"""

import ctypes
import threading
from collections.abc import Callable

import numpy as np
import pdqhash
import pdqhash.bindings
from numpy.lib.stride_tricks import as_strided

from streamguard.hashing.preprocess import PDQ_MAX_SIDE, Luma, fit_within

MIN_QUALITY = 50
"""Below this the PDQ authors advise not to match: flat, black or blurred frames."""

# facebook::pdq::hashing::pdqHash256FromFloatLuma(float*, float*, int, int,
#     float[64][64], float[16][64], float[16][16], Hash256&, int&)
_SYMBOL = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"


# ...::pdqDihedralHash256esFromFloatLuma(float*, float*, int, int, float[64][64],
#     float[16][64], float[16][16], float[16][16], Hash256* x 8, int&): one DCT, the hashes
#     of the picture as is, rotated 90/180/270, flipped about x, y and both diagonals.
_DIHEDRAL_SYMBOL = (
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLuma"
    "EPfS2_iiPA64_fS4_PA16_fS6_PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri"
)
DIHEDRAL = ("", "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flip+1", "flip-1")
"""The orientations ``pdq_dihedral`` returns, in its order (the reference's)."""


_Reference = Callable[..., None]
"""A reference C++ function: pointers and ints in, results written through the pointers."""


def _reference_function(symbol: str, pointers: int) -> _Reference | None:
    try:
        function = ctypes.CDLL(pdqhash.bindings.__file__)[symbol]
    except (OSError, AttributeError):
        return None
    pointer = ctypes.c_void_p
    function.argtypes = [pointer, pointer, ctypes.c_int, ctypes.c_int, *[pointer] * pointers]
    function.restype = None
    return function


_PDQ_FROM_LUMA = _reference_function(_SYMBOL, 5)
_DIHEDRAL_FROM_LUMA = _reference_function(_DIHEDRAL_SYMBOL, 13)
_scratch = threading.local()


def _hash_with_reference_cpp(pdq_from_luma: _Reference, grey: np.ndarray) -> tuple[bytes, int]:
    """``grey``: float32, C-contiguous, and overwritten (the C++ filters it in place)."""
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        # 64x64, 16x64 and 16x16 float work areas, the 16-word hash and the quality.
        buffers = _scratch.buffers = (
            np.empty((64, 64), np.float32),
            np.empty((16, 64), np.float32),
            np.empty((16, 16), np.float32),
            np.empty(16, np.uint16),
            np.empty(1, np.int32),
        )
    spare = np.empty_like(grey)
    rows, cols = grey.shape
    pdq_from_luma(
        grey.ctypes.data, spare.ctypes.data, rows, cols, *(b.ctypes.data for b in buffers)
    )
    words, quality = buffers[3], buffers[4]
    # Hash256 keeps word 15 first in its hex form, each word big-endian.
    return words[::-1].astype(">u2").tobytes(), int(quality[0])


def _dihedral_with_reference_cpp(
    dihedral_from_luma: _Reference, grey: np.ndarray
) -> tuple[list[bytes], int]:
    """``grey`` as in ``_hash_with_reference_cpp``; the 8 hashes in ``DIHEDRAL`` order."""
    buffers = getattr(_scratch, "dihedral", None)
    if buffers is None:
        buffers = _scratch.dihedral = (
            np.empty((64, 64), np.float32),
            np.empty((16, 64), np.float32),
            np.empty((16, 16), np.float32),
            np.empty((16, 16), np.float32),
            np.empty((8, 16), np.uint16),
            np.empty(1, np.int32),
        )
    *work, words, quality = buffers
    spare = np.empty_like(grey)
    rows, cols = grey.shape
    hashes = [words[i].ctypes.data for i in range(8)]
    dihedral_from_luma(
        grey.ctypes.data,
        spare.ctypes.data,
        rows,
        cols,
        *(w.ctypes.data for w in work),
        *hashes,
        quality.ctypes.data,
    )
    return [row[::-1].astype(">u2").tobytes() for row in words], int(quality[0])


def _dihedral_with_pdqhash_compute(rgb: np.ndarray) -> tuple[list[bytes], int]:
    bits, quality = pdqhash.compute_dihedral(rgb)
    return [np.packbits(b.astype(np.uint8)).tobytes() for b in bits], int(quality)


def pdq_dihedral(luma: Luma) -> tuple[list[bytes], int]:
    """PDQ of ``luma`` in the 8 orientations of ``DIHEDRAL`` (one DCT), and the quality.

    Matching these against an entry finds the picture flipped or turned by 90 degrees;
    the first hash is ``pdq_hash``'s.
    """
    small = fit_within(luma.pixels, PDQ_MAX_SIDE)
    if _DIHEDRAL_FROM_LUMA is None:
        return _dihedral_with_pdqhash_compute(_as_rgb(Luma(small, luma.studio_range).full_range()))
    return _dihedral_with_reference_cpp(_DIHEDRAL_FROM_LUMA, luma.float_full_range(small))


def _as_rgb(luma: np.ndarray) -> np.ndarray:
    """pdqhash turns RGB into grey with weights summing to one: a zero-stride
    three-channel view of the luma hashes exactly the luma. (Cython asks for a
    writable buffer; pdqhash only reads it.)"""
    luma = np.ascontiguousarray(luma)
    return as_strided(luma, shape=(*luma.shape, 3), strides=(*luma.strides, 0), writeable=True)


def _hash_with_pdqhash_compute(rgb: np.ndarray) -> tuple[bytes, int]:
    bits, quality = pdqhash.compute(rgb)
    return np.packbits(bits.astype(np.uint8)).tobytes(), int(quality)


def pdq_hash(luma: Luma) -> tuple[bytes, int]:
    """Return the 32-byte PDQ hash (byte order of its hex form) and its quality 0..100."""
    small = fit_within(luma.pixels, PDQ_MAX_SIDE)
    if _PDQ_FROM_LUMA is None:
        return _hash_with_pdqhash_compute(_as_rgb(Luma(small, luma.studio_range).full_range()))
    return _hash_with_reference_cpp(_PDQ_FROM_LUMA, luma.float_full_range(small))


_GREY_STRIP_ROWS = 32


def _pdqhash_grey(rgb: np.ndarray) -> np.ndarray:
    """The float32 grey ``pdqhash.compute`` makes of ``rgb`` (uint8, rows x columns x 3,
    any strides), bit for bit: its own expression (the channels times Python floats, in
    float64, summed red + green + blue, rounded to float32), a strip of rows at a time.
    Same numbers, elementwise; 0.04 instead of 0.44 s for 3840x2160, because the float64
    temporaries stay in cache."""
    grey = np.empty(rgb.shape[:2], np.float32)
    for top in range(0, len(rgb), _GREY_STRIP_ROWS):
        strip = rgb[top : top + _GREY_STRIP_ROWS]
        rows = slice(top, top + _GREY_STRIP_ROWS)
        grey[rows] = strip[:, :, 0] * 0.299 + strip[:, :, 1] * 0.587 + strip[:, :, 2] * 0.114
    return grey


def pdq_hash_rgb(rgb: np.ndarray) -> tuple[bytes, int]:
    """``pdqhash.compute(rgb)``'s hash and quality, as ``pdq_hash`` returns them: the
    reference C++ on the full-size picture, no pre-scale (0.26 s for 3840x2160)."""
    if _PDQ_FROM_LUMA is None:
        return _hash_with_pdqhash_compute(rgb)
    return _hash_with_reference_cpp(_PDQ_FROM_LUMA, _pdqhash_grey(rgb))


def pdq_dihedral_rgb(rgb: np.ndarray) -> tuple[list[bytes], int]:
    """``pdqhash.compute_dihedral(rgb)``: the 8 orientations of ``DIHEDRAL`` from the
    reference C++ on the full-size picture, one DCT; the first is ``pdq_hash_rgb``'s."""
    if _DIHEDRAL_FROM_LUMA is None:
        return _dihedral_with_pdqhash_compute(rgb)
    return _dihedral_with_reference_cpp(_DIHEDRAL_FROM_LUMA, _pdqhash_grey(rgb))
