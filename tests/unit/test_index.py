"""HammingIndex against a brute-force model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamguard.blocklist.index import HammingIndex
from streamguard.blocklist.index_layout import Layout


def brute_force(model: dict[int, np.ndarray], q: np.ndarray, t: int) -> list[tuple[int, int]]:
    """Sorted ``(distance, id)`` of every model entry within ``t`` of ``q``."""
    out = []
    for i, code in model.items():
        d = int(np.unpackbits(code ^ q).sum())
        if d <= t:
            out.append((d, i))
    return sorted(out)


def result(index: HammingIndex, q: np.ndarray, t: int) -> list[tuple[int, int]]:
    ids, dists = index.search(q, t)
    assert ids.dtype == np.int64
    return [(int(d), int(i)) for i, d in zip(ids, dists, strict=True)]


def near(rng: np.random.Generator, centres: np.ndarray, k: int, max_flips: int) -> np.ndarray:
    """``k`` codes each a random centre with up to ``max_flips`` random bits flipped."""
    codes = centres[rng.integers(0, len(centres), k)].copy()
    bits = np.unpackbits(codes, axis=1)
    for row in bits:
        row[rng.integers(0, bits.shape[1], rng.integers(0, max_flips + 1))] ^= 1
    return np.packbits(bits, axis=1)


@pytest.mark.parametrize("bits", [64, 256])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), max_threshold=st.integers(0, 24))
def test_matches_brute_force(bits: int, seed: int, max_threshold: int) -> None:
    """Random add/remove/re-add/replace sequences; every search equals brute force.

    Codes cluster around a few centres (near-duplicates, shared substrings, exact duplicates),
    and the small delta/compaction bounds make merges, rebuilds and compactions frequent.
    """
    rng = np.random.default_rng(seed)
    nbytes = bits // 8
    max_threshold = min(max_threshold, bits // 2)
    index = HammingIndex(bits, max_threshold, delta_limit=40, compact_fraction=0.2)
    model: dict[int, np.ndarray] = {}
    centres = rng.integers(0, 256, (8, nbytes), dtype=np.uint8)
    centres[1] = centres[0]
    centres[1, : nbytes // 2] = 0  # shares half its bytes with centre 0
    for _ in range(25):
        if rng.random() < 0.65:
            k = int(rng.integers(1, 150))
            ids = rng.integers(0, 500, k)
            codes = near(rng, centres, k, max_threshold + 4)
            index.add(ids, codes)
            for i, code in zip(ids, codes, strict=True):
                model[int(i)] = code
        else:
            ids = rng.integers(0, 600, int(rng.integers(1, 120)))
            expected = len({int(i) for i in ids} & model.keys())
            assert index.remove(ids) == expected
            for i in ids:
                model.pop(int(i), None)
        assert len(index) == len(model)
        for q in near(rng, centres, 4, max_threshold + 2):
            t = int(rng.integers(0, max_threshold + 1))
            assert result(index, q, t) == brute_force(model, q, t)


@pytest.mark.parametrize("bits", [64, 256])
def test_bulk_load_then_updates(bits: int) -> None:
    """A bulk build, an insert-merge into it, and tombstones before/after compaction."""
    rng = np.random.default_rng(7)
    nbytes = bits // 8
    t = 10 if bits == 64 else 31
    index = HammingIndex(bits, t, delta_limit=100)
    codes = rng.integers(0, 256, (3000, nbytes), dtype=np.uint8)
    codes[1000:1100] = codes[0]  # one heavily loaded bucket in every table
    index.add(np.arange(3000), codes)
    model = {i: codes[i] for i in range(3000)}
    extra = near(rng, codes[:50], 300, t)
    index.add(np.arange(5000, 5300), extra)  # > delta_limit: merged without rebuild
    model.update({5000 + i: extra[i] for i in range(300)})
    assert index.remove(np.arange(0, 600, 3)) == 200
    for i in range(0, 600, 3):
        del model[i]
    for q in near(rng, codes[:60], 40, t):
        assert result(index, q, t) == brute_force(model, q, t)
    assert index.remove(np.arange(600, 3000)) == 2400  # triggers compaction
    for i in range(600, 3000):
        del model[i]
    assert len(index) == len(model)
    for q in near(rng, codes[:60], 40, t):
        assert result(index, q, t) == brute_force(model, q, t)


@pytest.mark.parametrize("bits", [64, 256])
def test_empty_index(bits: int) -> None:
    index = HammingIndex(bits, 8)
    ids, dists = index.search(np.zeros(bits // 8, dtype=np.uint8), 8)
    assert len(index) == 0
    assert ids.size == 0 and dists.size == 0
    assert index.remove(np.array([1, 2])) == 0


def test_threshold_zero_is_exact_match() -> None:
    index = HammingIndex(64, 10)
    codes = np.array([bytearray.fromhex(h) for h in ("00ff00ff00ff00ff", "00ff00ff00ff00fe")])
    index.add(np.array([1, 2]), codes.astype(np.uint8))
    ids, dists = index.search(codes[0].astype(np.uint8), 0)
    assert ids.tolist() == [1] and dists.tolist() == [0]
    ids, dists = index.search(codes[0].astype(np.uint8), 1)
    assert ids.tolist() == [1, 2] and dists.tolist() == [0, 1]


@pytest.mark.parametrize("delta_limit", [1, 4096])
def test_complement_is_not_a_match(delta_limit: int) -> None:
    """Distance 256 must not wrap to 0 in the packed per-word sums (tables and delta)."""
    index = HammingIndex(256, 32, delta_limit=delta_limit)
    code = np.random.default_rng(1).integers(0, 256, 32, dtype=np.uint8)
    half = code.copy()
    half[:16] = ~half[:16]
    index.add(np.array([1, 2, 3]), np.stack([~code, code, half]))
    ids, dists = index.search(code, 32)
    assert ids.tolist() == [2] and dists.tolist() == [0]
    assert index.search(half, 32)[0].tolist() == [3]


def test_threshold_above_max_raises() -> None:
    index = HammingIndex(256, 31)
    with pytest.raises(ValueError, match="max_threshold"):
        index.search(np.zeros(32, dtype=np.uint8), 32)
    with pytest.raises(ValueError):
        index.search(np.zeros(32, dtype=np.uint8), -1)


def test_wrong_code_length_raises() -> None:
    index = HammingIndex(64, 10)
    with pytest.raises(ValueError, match=r"64-bit codes must be uint8 arrays of shape \(8,\)"):
        index.search(np.zeros(32, dtype=np.uint8), 3)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        index.add(np.array([1]), np.zeros((1, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        index.add(np.array([1]), np.zeros((1, 8), dtype=np.int64))


def test_ids_outside_int32_range_raise_on_add_and_are_unknown_on_remove() -> None:
    index = HammingIndex(64, 4)
    code = np.zeros((1, 8), dtype=np.uint8)
    for bad in (-1, 2**31):
        with pytest.raises(ValueError, match=r"ids must be in \[0, 2147483647\]"):
            index.add(np.array([bad]), code)
    index.add(np.array([5]), code)
    assert index.remove(np.array([-1, 2**31, 2**40, 6])) == 0
    assert len(index) == 1


@pytest.mark.parametrize("bits", [64, 256])
def test_sparse_ids(bits: int) -> None:
    """Ids need not be dense: the id -> slot map just grows to the largest one."""
    rng = np.random.default_rng(5)
    ids = np.array([3, 70_000, 1_000_000, 4, 999_999])
    codes = rng.integers(0, 256, (len(ids), bits // 8), dtype=np.uint8)
    index = HammingIndex(bits, 8, delta_limit=2)
    index.add(ids, codes)
    for i, code in zip(ids, codes, strict=True):
        assert index.search(code, 0)[0].tolist() == [i]
    assert index.remove(np.array([1_000_000, 3, 12])) == 2
    index.add(np.array([1_000_000]), codes[:1])
    assert index.search(codes[0], 0)[0].tolist() == [1_000_000]
    assert len(index) == 4


def test_each_code_is_stored_once() -> None:
    """Per entry: the 32-byte code once plus a 4-byte slot per table, not a code per table."""
    n = 100_000
    index = HammingIndex(256, 31)
    index.add(np.arange(n), np.random.default_rng(2).integers(0, 256, (n, 32), dtype=np.uint8))
    assert index.nbytes < 160 * n  # 16 tables of 16 bits: ~148 B; per-table codes: ~620 B


@pytest.mark.parametrize(("bits", "max_threshold"), [(64, 10), (256, 31)])
def test_layout_keeps_offsets_proportionate(bits: int, max_threshold: int) -> None:
    """At most n buckets per table (above the 8-bit minimum); the benchmark layouts."""
    for n in (1, 100, 10_000, 1_000_000, 2**20, 10_000_000, 30_000_000):
        layout = Layout.choose(bits, max_threshold, n)
        assert 2 ** max(layout.widths) <= max(n, 2**8)
    large = Layout.choose(bits, max_threshold, 10_000_000)
    assert (large.m, large.widths[0]) == ((3, 21) if bits == 64 else (11, 23))
    if bits == 256:
        assert Layout.choose(bits, max_threshold, 1_000_000).widths == (16,) * 16
        assert Layout.choose(bits, max_threshold, 30_000_000).widths == (23,) * 11


def test_pdq_layout_changes_at_its_thresholds() -> None:
    """16 x 16 at 2**20 entries, 12 x 21 at 2**21, 11 x 23 from 2**23 (the n-bucket cap)."""
    widths = {n: Layout.choose(256, 31, n).widths for n in (2**20, 2**21, 2**23 - 1, 2**23)}
    assert widths[2**20] == (16,) * 16
    assert widths[2**21] == (21,) * 12
    assert len(widths[2**23 - 1]) == 11 and widths[2**23 - 1][0] < 23
    assert widths[2**23] == (23,) * 11


def test_substrings_straddling_words_are_read_whole() -> None:
    """11 x 23 bits: a straddling table joins the top of one word and the next word's bottom."""
    layout = Layout.from_widths(4, [23] * 11)
    words = np.zeros(4, dtype=np.uint64)
    words[0] = np.uint64(1) << np.uint64(63)  # bit 63: table 2 covers bits 46..68, its bit 17
    words[1] = np.uint64(0b101)  # bits 64, 66: table 2's bits 18 and 20
    keys = layout.keys(words.reshape(2, 1, 2))[:, 0] - layout.bases.view(np.intp)
    assert keys[2] == (1 << 17) | (1 << 18) | (1 << 20)
    assert np.delete(keys, 2).tolist() == [0] * 10
    probed = layout.probe_buckets(words, 31)  # the query path computes the same keys
    assert int(keys[2] + layout.bases[2]) in probed.tolist()
    with pytest.raises(ValueError, match="do not fit"):
        Layout.from_widths(4, [24] * 11)


@pytest.mark.parametrize("widths", [(23,) * 11, (21,) * 12, (20,) * 12, (22,) * 11])
def test_large_index_layouts_match_brute_force(
    monkeypatch: pytest.MonkeyPatch, widths: tuple[int, ...]
) -> None:
    """The layouts chosen from 2**20 entries up, forced onto a small index: exact at t <= 31.

    Planted neighbours sit at distances up to 33 around the query, including ones whose
    flipped bits all fall into one substring or straddle word boundaries; queries run on the
    bulk build, after a merge into it and after tombstones.
    """
    monkeypatch.setattr(
        Layout, "choose", classmethod(lambda cls, *_: cls.from_widths(4, list(widths)))
    )
    rng = np.random.default_rng(len(widths) * 100 + widths[0])
    index = HammingIndex(256, 31, delta_limit=64)
    codes = rng.integers(0, 256, (2000, 32), dtype=np.uint8)
    queries = codes[:20].copy()
    planted = []
    for q in queries:
        bits = np.unpackbits(q)
        for d in (0, 1, 15, 29, 30, 31, 32, 33):
            row = bits.copy()
            row[rng.choice(256, d, replace=False)] ^= 1
            planted.append(np.packbits(row))
        row = bits.copy()
        row[40:71] ^= 1  # 31 adjacent bits across the first word boundary
        planted.append(np.packbits(row))
    codes = np.concatenate([codes, np.array(planted)])
    index.add(np.arange(len(codes)), codes)
    model = {i: codes[i] for i in range(len(codes))}
    extra = near(rng, queries, 100, 31)
    index.add(np.arange(5000, 5100), extra)  # > delta_limit: merged into the tables
    model.update({5000 + i: extra[i] for i in range(100)})
    index.remove(np.arange(2000, 2100))
    for i in range(2000, 2100):
        del model[i]
    for q in queries:
        for t in (31, 17, 0):
            assert result(index, q, t) == brute_force(model, q, t)


def test_relayout_from_16_to_11_tables_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Growing past 4x the layout's size rebuilds with the large layout (here from 400 entries)."""
    real_choose = Layout.choose.__func__  # type: ignore[attr-defined]

    def choose(cls: type[Layout], bits: int, max_threshold: int, n: int) -> Layout:
        return cls.from_widths(4, [23] * 11) if n >= 400 else real_choose(cls, bits, 31, 2**20)

    monkeypatch.setattr(Layout, "choose", classmethod(choose))
    rng = np.random.default_rng(5)
    index = HammingIndex(256, 31, delta_limit=50)
    centres = rng.integers(0, 256, (10, 32), dtype=np.uint8)
    model: dict[int, np.ndarray] = {}
    layouts = set()
    for step in range(16):  # rebuilds at 60, 120 and 780 entries
        ids = np.arange(60 * step, 60 * step + 60)
        codes = near(rng, centres, len(ids), 31)
        index.add(ids, codes)
        model.update({int(i): c for i, c in zip(ids, codes, strict=True)})
        layout = index._snap.layout
        layouts.add(None if layout is None else layout.m)
        for q in near(rng, centres, 3, 20):
            assert result(index, q, 31) == brute_force(model, q, 31)
    assert {16, 11} <= layouts


def test_invalid_construction_raises() -> None:
    with pytest.raises(ValueError, match="bits"):
        HammingIndex(128, 10)
    with pytest.raises(ValueError, match="max_threshold"):
        HammingIndex(64, 40)


@pytest.mark.parametrize("delta_limit", [1, 4096])
def test_duplicate_ids_replace(delta_limit: int) -> None:
    """Re-adding an id replaces it, whether the old entry is in the delta or the tables."""
    index = HammingIndex(64, 4, delta_limit=delta_limit)
    a = np.frombuffer(bytes.fromhex("0123456789abcdef"), dtype=np.uint8)
    b = np.frombuffer(bytes.fromhex("fedcba9876543210"), dtype=np.uint8)
    index.add(np.array([7, 8]), np.stack([a, a]))
    index.add(np.array([7]), b[None, :])
    assert len(index) == 2
    assert index.search(a, 0)[0].tolist() == [8]
    assert index.search(b, 0)[0].tolist() == [7]
    index.add(np.array([9, 9]), np.stack([a, b]))  # repeated id within one call: last wins
    assert index.search(b, 0)[0].tolist() == [7, 9]
    assert len(index) == 3


def test_nbytes_counts_tables() -> None:
    index = HammingIndex(256, 31, delta_limit=10)
    empty = index.nbytes
    codes = np.random.default_rng(3).integers(0, 256, (100, 32), dtype=np.uint8)
    index.add(np.arange(100), codes)
    assert index.nbytes > empty + 100 * 32


@pytest.mark.parametrize("bits", [64, 256])
def test_search_during_updates_sees_consistent_snapshots(bits: int) -> None:
    """A reader thread never misses entries that a concurrent writer leaves untouched."""
    rng = np.random.default_rng(11)
    nbytes = bits // 8
    index = HammingIndex(bits, 8, delta_limit=30, compact_fraction=0.2)
    stable = rng.integers(0, 256, (20, nbytes), dtype=np.uint8)
    index.add(np.arange(20), stable)
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            for i, code in enumerate(stable):
                ids, _ = index.search(code, 0)
                if i not in ids.tolist():
                    errors.append(f"id {i} missing")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(40):
            ids = np.arange(100 + 50 * round_, 150 + 50 * round_)
            index.add(ids, near(rng, stable, len(ids), 4))  # merges every round or so
            index.remove(ids[: 45 if round_ % 2 else 5])  # and compactions
    finally:
        stop.set()
        thread.join()
    assert not errors
