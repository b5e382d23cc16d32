"""pHash's and dHash's stable bits: the frame-side gate that PDQ's quality is for PDQ."""

import numpy as np
import pytest

from streamguard.hashing import MIN_STABLE_BITS, FrameHash, Luma, hash_luma
from streamguard.hashing.featureless import featureless_pictures
from streamguard.hashing.picture import load_picture

from ..conftest import SAMPLES


def stable_bits(pixels: np.ndarray) -> dict[str, int]:
    hashes = hash_luma(Luma(pixels, video=True), ["phash", "dhash"])
    return {h.algo: h.stable_bits for h in hashes}


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*/*.png")), ids=lambda p: p.name)
def test_pictures_with_content_have_most_bits_stable(path):
    luma = load_picture(path).luma
    for frame_hash in hash_luma(luma, ["phash", "dhash"]):
        assert frame_hash.stable_bits >= 50 and frame_hash.matchable


def test_featureless_pictures_have_few_stable_phash_bits():
    """Flat, gradients in any direction, radial: their DCT is a row, a column, or even terms."""
    for name, pixels in featureless_pictures():
        assert stable_bits(pixels)["phash"] < MIN_STABLE_BITS["phash"], name


def test_flat_noisy_and_faded_frames_are_not_matchable():
    rng = np.random.default_rng(2)
    flat = np.full((720, 1280), 16, np.uint8)
    noisy = np.clip(flat + rng.normal(0, 4, flat.shape), 0, 255).astype(np.uint8)
    picture = load_picture(SAMPLES / "flagged" / "flagged_01.png").luma.pixels
    faded = np.rint(picture * 0.01).astype(np.uint8)  # the last frames of a fade to black
    for pixels in (flat, noisy, faded):
        for frame_hash in hash_luma(Luma(pixels, video=True), ["phash", "dhash"]):
            assert frame_hash.stable_bits < MIN_STABLE_BITS[frame_hash.algo]
            assert not frame_hash.matchable


def test_matchable_combines_both_gates():
    assert FrameHash("pdq", b"", quality=49).matchable is False
    assert FrameHash("pdq", b"", quality=50).matchable is True
    assert FrameHash("phash", b"", stable_bits=16).matchable is False
    assert FrameHash("phash", b"", stable_bits=17).matchable is True
    assert FrameHash("dhash", b"", stable_bits=7).matchable is False
    assert FrameHash("dhash", b"", stable_bits=8).matchable is True
