"""Perceptual hashes of a grey (luma) image: PDQ, pHash and dHash. Still pictures are read
and hashed by ``hashing.picture``."""

from collections.abc import Iterable
from dataclasses import dataclass

from streamguard.hashing.imagehash_compat import dhash, phash
from streamguard.hashing.pdq import MIN_QUALITY, pdq_hash
from streamguard.hashing.preprocess import Luma

MAX_SIDE = 8192
"""Frames or images larger than this on a side are refused, never decoded."""


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    bits: int
    default_threshold: int

    @property
    def hex_length(self) -> int:
        return self.bits // 4

    @property
    def max_distance(self) -> int:
        """The largest match distance (threshold) streamguard accepts: half the bits.

        Hashes of unrelated pictures are about ``bits / 2`` apart, so a threshold there
        already matches about half of everything (more would match a picture's opposite
        better than the picture), and the Hamming index is built for at most this.
        """
        return self.bits // 2


ALGORITHMS: dict[str, Algorithm] = {
    "pdq": Algorithm("pdq", 256, 31),
    "phash": Algorithm("phash", 64, 10),
    "dhash": Algorithm("dhash", 64, 10),
}


def check_distance(algo: str, value: object) -> int:
    """``value`` as a match distance of ``algo`` (a blocklist threshold, a policy limit): a
    whole number from 0 to ``max_distance``. ValueError says what is wrong, without saying
    where the value came from: the caller adds that."""
    spec = ALGORITHMS.get(algo)
    if spec is None:
        raise ValueError(f"unknown algorithm {algo!r}, expected one of {', '.join(ALGORITHMS)}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{algo} distance: expected a whole number, got {value!r}")
    if not 0 <= value <= spec.max_distance:
        raise ValueError(
            f"{algo} distance {value} is out of range: 0 to {spec.max_distance} "
            f"(half of {spec.bits} bits; unrelated pictures are about that far apart)"
        )
    return value


MIN_STABLE_BITS = {"phash": 17, "dhash": 8}
"""pHash/dHash with fewer stable bits (imagehash_compat.py) are not matched. A flat
picture, a linear gradient in any direction or a radial one leaves at most 16 of pHash's
64 coefficients off the median (its first row and column, or the even ones); a flat or
noisy picture decides no dHash bit. Keyframes of pictures with content had at least 19
and 11 in the quality evaluation (docs/hashing.md)."""


@dataclass(frozen=True, slots=True)
class FrameHash:
    """One hash of one frame; ``quality`` is PDQ's 0..100 score, ``stable_bits`` how many
    of pHash's or dHash's 64 bits the picture decides rather than rounding noise."""

    algo: str
    digest: bytes
    quality: int | None = None
    stable_bits: int | None = None

    @property
    def hex(self) -> str:
        return self.digest.hex()

    @property
    def matchable(self) -> bool:
        """Whether the picture carries enough to match on: PDQ's quality gate, and its
        counterpart for pHash and dHash."""
        if self.quality is not None and self.quality < MIN_QUALITY:
            return False
        return self.stable_bits is None or self.stable_bits >= MIN_STABLE_BITS[self.algo]


_IMAGEHASH_COMPATIBLE = {"phash": phash, "dhash": dhash}


def hash_luma(luma: Luma, algos: Iterable[str]) -> list[FrameHash]:
    """Hash a grey picture with each of ``algos``."""
    hashes, imagehash_input = [], None
    for algo in algos:
        if algo == "pdq":
            digest, quality = pdq_hash(luma)
            hashes.append(FrameHash(algo, digest, quality))
        else:
            if imagehash_input is None:
                imagehash_input = luma.imagehash_input()
            digest, stable_bits = _IMAGEHASH_COMPATIBLE[algo](imagehash_input)
            hashes.append(FrameHash(algo, digest, stable_bits=stable_bits))
    return hashes


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
