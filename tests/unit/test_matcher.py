import numpy as np

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist
from streamguard.detect.matcher import FrameMatcher
from streamguard.hashing import Luma, hash_luma
from streamguard.ingest.sampler import Frame


def frame_of(pixels: np.ndarray) -> Frame:
    height, width = pixels.shape
    return Frame("s", 1.0, 0.0, Luma(pixels), width, height)


def blocklist_with(pixels: np.ndarray) -> Blocklist:
    (pdq,) = hash_luma(Luma(pixels), ["pdq"])
    blocklist = Blocklist()
    blocklist.put([0], [Entry("pdq", pdq.digest, "e1", "l", "test")])
    return blocklist


def test_low_quality_pdq_is_never_matched():
    """A flat frame has a degenerate PDQ hash: matching it would flag every black screen."""
    black = np.zeros((360, 640), np.uint8)
    matcher = FrameMatcher(blocklist_with(black))
    assert matcher(frame_of(black)) == []
    assert matcher.stats.low_quality == 1


def test_textured_frame_matches_its_own_entry():
    rng = np.random.default_rng(3)
    textured = np.kron(rng.integers(0, 256, (36, 64), dtype=np.uint8), np.ones((10, 10), np.uint8))
    matcher = FrameMatcher(blocklist_with(textured))
    (match,) = matcher(frame_of(textured))
    assert (match.hit.entry.id, match.hit.distance, match.hash.quality >= 50) == ("e1", 0, True)
