"""Degenerate entries: the featureless reference hashes, the refusal, the mark, the frame gate."""

import json

import numpy as np
import pytest

from streamguard.blocklist.degenerate import (
    Featureless,
    Refusal,
    load_screened,
    radius,
    shown_id,
)
from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist
from streamguard.detect.matcher import FrameMatcher
from streamguard.errors import BlocklistFormatError
from streamguard.hashing import ALGORITHMS, Luma, hash_luma
from streamguard.hashing.featureless import featureless_codes, featureless_pictures
from streamguard.ingest.sampler import Frame
from streamguard.observability import metrics

PDQ_ZERO = "0" * 64
SAMPLE_PHASH = "dab222dc393cdc38"  # streamguard/samples/blocklist.csv: flagged_01-phash
REFUSED = "degenerate hash (a flat or gradient picture has it); --allow-degenerate loads it"


def codes(*hexes: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex("".join(hexes)), np.uint8).reshape(len(hexes), -1)


def flipped(code: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    unpacked = np.unpackbits(code)
    unpacked[rng.choice(len(unpacked), bits, replace=False)] ^= 1
    return np.packbits(unpacked)


def test_the_careless_hashes_are_in_the_reference_set():
    def held(algo: str, hex_hash: str) -> bool:
        return bool((featureless_codes(algo) == codes(hex_hash)[0]).all(axis=1).any())

    assert held("pdq", PDQ_ZERO)  # black
    assert held("phash", "0000000000000000") and held("phash", "8000000000000000")
    for gradient in ("0000000000000000", "ffffffffffffffff", "0f0f0f0f0f0f0f0f"):
        assert held("dhash", gradient)
    assert len(list(featureless_pictures())) == 57


def test_radius_is_the_default_threshold_or_a_larger_configured_one():
    assert radius("phash", {}) == ALGORITHMS["phash"].default_threshold == 10
    assert radius("phash", {"phash": 14}) == 14
    assert radius("pdq", {"pdq": 20}) == 31  # a smaller threshold does not shrink it


@pytest.mark.parametrize("algo", ["pdq", "phash", "dhash"])
def test_large_batches_agree_with_a_brute_force_count(algo):
    """Files go through the chunked two-stage comparison, frames through one broadcast."""
    rng = np.random.default_rng(5)
    featureless = Featureless()
    references = featureless_codes(algo)
    limit = featureless.radii[algo]
    near = [
        flipped(references[i % len(references)], int(rng.integers(0, 2 * limit)), rng)
        for i in range(3000)
    ]
    noise = rng.integers(0, 256, (40_000, references.shape[1]), dtype=np.uint8)
    batch = np.concatenate([np.array(near), noise])
    bits = np.unpackbits(batch[:, None, :] ^ references[None], axis=2).sum(axis=2)
    expected = (bits <= limit).any(axis=1)
    assert 0 < expected.sum() < len(near)  # both kinds among the near ones
    assert (featureless.mask(algo, batch) == expected).all()
    small = np.concatenate(
        [featureless.mask(algo, batch[i : i + 200]) for i in range(0, 4000, 200)]
    )
    assert (small == expected[:4000]).all()


def test_refusals_name_file_line_and_id_never_the_hash(tmp_path):
    path = tmp_path / "careless.csv"
    path.write_text(
        "algo,hash,id,list\n"
        "# exported\n"
        f"phash,{SAMPLE_PHASH},kept,l\n"
        "\n"
        f"pdq,{PDQ_ZERO},black,l\n"
        "dhash,FFFFFFFFFFFFFFFF,x-ffffffffffffffff,l\n"
    )
    screened = load_screened(path, Featureless())
    assert [e.id for e in screened.entries] == ["kept"] and screened.degenerate == 0
    assert [str(r) for r in screened.refused] == [
        f"{path}: line 5: entry 'black' (pdq) refused: {REFUSED}",
        f"{path}: line 6: entry '<holds the hash, not shown>' (dhash) refused: {REFUSED}",
    ]
    allowed = load_screened(path, Featureless(), allow=True)
    assert len(allowed.entries) == 3 and allowed.refused == [] and allowed.degenerate == 2


def test_refused_lines_are_found_past_the_first_block_and_in_json_lines(tmp_path):
    rows = [f"phash,{np.random.default_rng(i).bytes(8).hex()},e{i}" for i in range(20_000)]
    rows[15_000] = "phash,8000000000000000,grey"
    big = tmp_path / "big.csv"
    big.write_text("algo,hash,id\n" + "\n".join(rows) + "\n")
    screened = load_screened(big, Featureless())
    assert [r.where for r in screened.refused] == [f"{big}: line 15002"]
    assert len(screened.entries) == 19_999

    lines = tmp_path / "lines.jsonl"
    record = {"algo": "dhash", "hash": "0" * 16, "id": "two\nlines"}
    lines.write_text(f'{{"algo": "phash", "hash": "{SAMPLE_PHASH}"}}\n\n{json.dumps(record)}\n')
    (refusal,) = load_screened(lines, Featureless()).refused
    assert str(refusal) == f"{lines}: line 3: entry 'two\\nlines' (dhash) refused: {REFUSED}"


def test_blocklist_marks_degenerate_entries_and_counts_them():
    grey, sample = bytes.fromhex("8000000000000000"), bytes.fromhex(SAMPLE_PHASH)
    blocklist = Blocklist()
    blocklist.put(
        [0, 1], [Entry("phash", grey, "grey", "l", "c"), Entry("phash", sample, "s", "l", "c")]
    )
    assert blocklist.degenerate_counts() == {"pdq": 0, "phash": 1, "dhash": 0}
    assert [hit.entry.degenerate for hit in blocklist.search("phash", grey)] == [True]
    assert [hit.entry.degenerate for hit in blocklist.search("phash", sample)] == [False]
    blocklist.put([0], [Entry("phash", sample, "grey", "l", "c")])  # replaced: no longer
    assert blocklist.degenerate_counts()["phash"] == 0
    blocklist.put([2], [Entry("dhash", bytes(8), "flat", "l", "c")])
    blocklist.drop(np.array([2]))
    assert sum(blocklist.degenerate_counts().values()) == 0


def test_from_files_refuses_unless_allowed_and_fails_when_nothing_is_left(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text(f"algo,hash,id\nphash,{SAMPLE_PHASH},ok\ndhash,{'0' * 16},flat\n")
    blocklist, refused = Blocklist.from_files([path])
    assert len(blocklist) == 1 and [r.entry.id for r in refused] == ["flat"]
    blocklist, refused = Blocklist.from_files([path], allow_degenerate=True)
    assert len(blocklist) == 2 and refused == [] and blocklist.degenerate_counts()["dhash"] == 1
    only = tmp_path / "only.csv"
    only.write_text(f"algo,hash\npdq,{PDQ_ZERO}\n")
    with pytest.raises(BlocklistFormatError, match="every entry is degenerate"):
        Blocklist.from_files([only])


def test_a_larger_configured_threshold_widens_what_is_degenerate(tmp_path):
    twelve_off = "0000000000000fff"  # 12 bits from the pHash of black, farther from the rest
    nearest = np.unpackbits(featureless_codes("phash") ^ codes(twelve_off), axis=1).sum(axis=1)
    assert nearest.min() == 12
    path = tmp_path / "l.csv"
    path.write_text(f"algo,hash,id\nphash,{twelve_off},a\nphash,{SAMPLE_PHASH},b\n")
    assert Blocklist.from_files([path])[1] == []
    assert [r.entry.id for r in Blocklist.from_files([path], thresholds={"phash": 12})[1]] == ["a"]


def test_refusal_of_a_single_entry_and_ids_that_hold_the_hash():
    entry = Entry("dhash", bytes(8), "m1", "manual", "test")
    assert str(Refusal("blocklist add", entry)) == (
        f"blocklist add: entry 'm1' (dhash) refused: {REFUSED}"
    )
    pdq = bytes.fromhex(PDQ_ZERO[:44] + "0123456789abcdef0123")
    for held in ("ab" + pdq.hex()[34:54], pdq.hex().upper(), "case 0000000000000000"):
        assert shown_id(Entry("pdq", pdq, held, "l", "c")) == "<holds the hash, not shown>"
    assert shown_id(Entry("pdq", pdq, "h" + "f" * 16, "l", "c")) == "h" + "f" * 16


def frame_of(pixels: np.ndarray) -> Frame:
    height, width = pixels.shape
    return Frame("s", 1.0, 0.0, Luma(pixels, video=True), width, height)


def test_featureless_frames_are_not_looked_up_even_with_their_entries_loaded():
    """Every careless entry a featureless picture gives, loaded as allowed: none matches."""
    entries, frames = [], []
    for number, (name, pixels) in enumerate(featureless_pictures()):
        frames.append(frame_of(np.kron(pixels, np.ones((5, 5), np.uint8))))  # 1280x720
        for frame_hash in hash_luma(Luma(pixels), ["pdq", "phash", "dhash"]):
            entries.append(Entry(frame_hash.algo, frame_hash.digest, f"{name}-{number}", "l", "c"))
    blocklist = Blocklist()
    blocklist.put(np.arange(len(entries)), entries)
    assert sum(blocklist.degenerate_counts().values()) == len(entries)
    matcher = FrameMatcher(blocklist)
    gated = {algo: metrics.FRAMES_FEATURELESS.labels(algo) for algo in ("phash", "dhash")}
    before = {algo: counter._value.get() for algo, counter in gated.items()}
    assert [matcher(frame) for frame in frames] == [[]] * len(frames)
    for algo, counter in gated.items():  # pHash and dHash: never looked up
        assert counter._value.get() - before[algo] == len(frames)
    assert matcher.stats.low_quality >= len(frames) - 6  # PDQ: the steep radial ones pass


def test_a_textured_frame_is_still_looked_up():
    rng = np.random.default_rng(3)
    textured = np.kron(rng.integers(0, 256, (36, 64), dtype=np.uint8), np.ones((20, 20), np.uint8))
    entries = [
        Entry(h.algo, h.digest, h.algo, "l", "c")
        for h in hash_luma(Luma(textured, video=True), ["pdq", "phash", "dhash"])
    ]
    blocklist = Blocklist()
    blocklist.put(np.arange(3), entries)
    matcher = FrameMatcher(blocklist)
    assert sorted(m.hit.entry.id for m in matcher(frame_of(textured))) == ["dhash", "pdq", "phash"]
    assert matcher.stats.featureless == 0
