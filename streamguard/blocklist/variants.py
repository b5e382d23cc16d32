"""Variants of an image whose hashes an entry added from the image also carries.

Frame-side steps (borders removed, PDQ's flips and quarter turns) recover what a
transformation only moved. A crop removes content no frame-side step can restore:
plain PDQ distances after a 5% crop are typically 50-140 bits. Whoever holds the
image can hash its likely crops in advance: centred crops (zooms) and one-sided
crops, and a mirror image for pHash and dHash, which have no dihedral matching.
Each variant becomes its own entry, ``ID~SUFFIX``, with the image's list, category
and label; matches against one need confirmation (docs/policy.md).
"""

from collections.abc import Iterable

from streamguard.blocklist.degenerate import REASON, Featureless
from streamguard.hashing import FrameHash
from streamguard.hashing.picture import Picture, hash_picture

VARIANT_MARK = "~"  # entry ids "ID~crop5"

CENTRE_CROPS = (0.05, 0.10, 0.15)  # fraction of each side removed, half on either end
SIDE_CROPS = (0.05, 0.10)  # fraction removed from one side
SIDES = ("top", "bottom", "left", "right")
CORNER_CROP = 0.05  # removed from two adjacent sides
CORNERS = (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"))
MIRRORED_FOR = frozenset({"phash", "dhash"})  # PDQ matches mirror images by itself


def _crop(picture: Picture, top: float, bottom: float, left: float, right: float) -> Picture:
    height, width = picture.shape
    rows = slice(round(height * top), height - round(height * bottom))
    cols = slice(round(width * left), width - round(width * right))
    return picture.crop(rows, cols)


def image_variants(picture: Picture) -> list[tuple[str, Picture]]:
    """``('', picture)`` first, then each variant with its id suffix."""
    variants = [("", picture)]
    for fraction in CENTRE_CROPS:
        half = fraction / 2
        variants.append((f"crop{round(fraction * 100)}", _crop(picture, half, half, half, half)))
    for fraction in SIDE_CROPS:
        for side in SIDES:
            cut = {name: fraction if name == side else 0.0 for name in SIDES}
            variants.append((f"{side}{round(fraction * 100)}", _crop(picture, **cut)))
    for corner in CORNERS:
        cut = {name: CORNER_CROP if name in corner else 0.0 for name in SIDES}
        variants.append(("".join(corner) + f"{round(CORNER_CROP * 100)}", _crop(picture, **cut)))
    variants.append(("mirror", picture.mirrored()))
    return variants


def wanted(suffix: str, algo: str) -> bool:
    """Whether a variant's hash is worth an entry for ``algo``."""
    return suffix != "mirror" or algo in MIRRORED_FOR


def image_hashes(
    picture: Picture, algos: Iterable[str], *, variants: bool
) -> list[tuple[str, FrameHash, str | None]]:
    """``(suffix, hash, problem)`` for each entry ``blocklist add-image`` makes of a picture:
    the picture itself (suffix ''), and with ``variants`` each variant worth an entry.
    ``problem`` says why a hash makes no entry (None if it makes one); the caller skips
    those, saying so."""
    algos = list(algos)
    hashes = [
        (suffix, frame_hash)
        for suffix, variant in (image_variants(picture) if variants else [("", picture)])
        for frame_hash in hash_picture(variant, [algo for algo in algos if wanted(suffix, algo)])
    ]
    degenerate = Featureless().of([h.algo for _, h in hashes], [h.digest for _, h in hashes])
    return [
        (suffix, frame_hash, _problem(frame_hash, flag))
        for (suffix, frame_hash), flag in zip(hashes, degenerate.tolist(), strict=True)
    ]


def _problem(frame_hash: FrameHash, degenerate: bool) -> str | None:
    """Too little of the picture in the hash to match on, or a featureless picture's hash
    (no flag lets ``add-image`` write those: docs/blocklist-store.md)."""
    if frame_hash.quality is not None and not frame_hash.matchable:
        return f"quality {frame_hash.quality} is too low"
    if not frame_hash.matchable:
        return f"{frame_hash.stable_bits} stable bits of 64 are too few"
    return REASON if degenerate else None


def entry_id(name: str, algo: str, suffix: str) -> str:
    """``NAME-ALGO``, and ``NAME-ALGO~SUFFIX`` for a variant."""
    return f"{name}-{algo}" + (VARIANT_MARK + suffix if suffix else "")
