"""Evasion resistance before matching: bars removed, PDQ's flips and quarter turns."""

import numpy as np
import pdqhash
import pytest

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist
from streamguard.blocklist.variants import image_variants, wanted
from streamguard.detect.matcher import PLAIN, ROBUST, FrameMatcher, frame_hashes
from streamguard.hashing import hash_luma
from streamguard.hashing.borders import content_box, inner_pictures
from streamguard.hashing.pdq import DIHEDRAL, pdq_dihedral, pdq_hash
from streamguard.hashing.picture import hash_picture, load_picture
from streamguard.hashing.preprocess import PDQ_MAX_SIDE, Luma, fit_within
from streamguard.ingest.sampler import Frame

from ..conftest import SAMPLES

LOADED = load_picture(SAMPLES / "flagged" / "flagged_01.png")
PICTURE = LOADED.luma.pixels  # 1280x720


def padded(pixels: np.ndarray, top: int, left: int, level: int) -> np.ndarray:
    height, width = pixels.shape
    canvas = np.full((height + 2 * top, width + 2 * left), level, np.uint8)
    canvas[top : top + height, left : left + width] = pixels
    return canvas


@pytest.mark.parametrize(
    ("top", "left", "level"),
    [(144, 256, 255), (0, 640, 0), (90, 0, 16), (60, 100, 128)],  # pad, pillar, letterbox
)
def test_bars_are_found_to_the_pixel(top, left, level):
    canvas = padded(PICTURE, top, left, level)
    height, width = canvas.shape
    assert content_box(canvas) == (top, height - top, left, width - left)


def test_no_bars_no_box():
    assert content_box(PICTURE) is None
    assert content_box(np.full((720, 1280), 40, np.uint8)) is None  # all flat: nothing inside


def test_dihedral_is_the_reference_and_starts_with_the_plain_hash():
    hashes, quality = pdq_dihedral(Luma(PICTURE))
    assert (hashes[0], quality) == pdq_hash(Luma(PICTURE))
    small = np.ascontiguousarray(fit_within(PICTURE, PDQ_MAX_SIDE))
    rgb = np.repeat(small[:, :, None], 3, axis=2)
    reference, _ = pdqhash.compute_dihedral(rgb)
    assert hashes == [np.packbits(bits.astype(np.uint8)).tobytes() for bits in reference]


def test_plain_looks_at_the_frame_only():
    hashes = frame_hashes(Luma(padded(PICTURE, 144, 256, 255)), ["pdq", "phash"], PLAIN)
    assert [(t, h.algo) for t, h in hashes] == [("", "pdq"), ("", "phash")]


def test_robust_adds_the_bars_removed_and_every_orientation():
    hashes = frame_hashes(Luma(padded(PICTURE, 144, 256, 255)), ["pdq", "phash"], ROBUST)
    transforms = [t for t, h in hashes if h.algo == "pdq"]
    assert transforms == list(DIHEDRAL) + ["borders" + (f"+{o}" if o else "") for o in DIHEDRAL]
    assert [t for t, h in hashes if h.algo == "phash"] == ["", "borders"]


def entries_for(pixels: np.ndarray) -> Blocklist:
    blocklist = Blocklist()
    frame_hashes_ = hash_luma(Luma(pixels), ["pdq", "phash"])
    blocklist.put([0, 1], [Entry(h.algo, h.digest, "e1", "l", "test") for h in frame_hashes_])
    return blocklist


@pytest.mark.parametrize(
    ("evasion", "transform"),
    [
        (lambda p: padded(p, 144, 256, 255), "borders"),
        (lambda p: p[:, ::-1], "flipy"),
        (lambda p: np.rot90(p), "rotate270"),  # the frame turned back
        (lambda p: padded(p[:, ::-1], 0, 320, 0), "borders+flipy"),
    ],
)
def test_evasions_plain_pdq_misses_are_matched(evasion, transform):
    blocklist = entries_for(PICTURE)
    shown = np.ascontiguousarray(evasion(PICTURE))
    frame = Frame("s", 1.0, 0.0, Luma(shown), shown.shape[1], shown.shape[0])
    assert not [m for m in FrameMatcher(blocklist, robustness=PLAIN)(frame) if m.hash.algo == "pdq"]
    (match,) = [m for m in FrameMatcher(blocklist)(frame) if m.hash.algo == "pdq"]
    assert (match.transform, match.hit.distance <= 8) == (transform, True)


def test_image_variants_cover_crops_and_a_mirror():
    variants = dict(image_variants(LOADED))
    assert next(iter(variants)) == "" and variants[""] is LOADED
    assert variants["crop10"].shape == (648, 1152)  # 5% off each end
    assert (variants["crop10"].rgb == LOADED.rgb[36:-36, 64:-64]).all()
    assert variants["left5"].shape == (720, 1216)
    assert (variants["mirror"].luma.pixels == PICTURE[:, ::-1]).all()
    assert (variants["mirror"].rgb == LOADED.rgb[:, ::-1]).all()
    assert not wanted("mirror", "pdq") and wanted("mirror", "phash") and wanted("crop5", "pdq")


def test_a_cropped_copy_matches_a_variant_entry_not_the_plain_one():
    blocklist = Blocklist()
    entries = [
        Entry(
            "pdq",
            hash_picture(picture, ["pdq"])[0].digest,
            f"e1~{suffix}" if suffix else "e1",
            "l",
            "t",
        )
        for suffix, picture in image_variants(LOADED)
    ]
    blocklist.put(list(range(len(entries))), entries)
    height, width = PICTURE.shape
    cropped = np.ascontiguousarray(PICTURE[36 : height - 36, 64 : width - 64])  # 10% crop
    frame = Frame("s", 1.0, 0.0, Luma(cropped), cropped.shape[1], cropped.shape[0])
    (match,) = FrameMatcher(blocklist, robustness=PLAIN)(frame)
    assert match.hit.entry.id == "e1~crop10" and match.widened


def test_a_margin_the_colour_of_the_bars_is_recovered_by_even_bars():
    picture = PICTURE.copy()
    picture[:, :40] = 0  # the picture's own black margin, next to a black pillarbox bar
    canvas = padded(picture, 0, 320, 0)
    (name, found), (even_name, even) = inner_pictures(canvas)
    assert (name, found.shape) == ("borders", (720, 1240))  # the margin taken for bar
    assert even_name == "borders-even" and (even == picture).all()
