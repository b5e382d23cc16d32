"""Exact Hamming range search over 64-bit and 256-bit perceptual hashes.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Exact Search in Hamming Space with
Multi-Index Hashing", TPAMI 2014), vectorised with numpy. Design, parameters, costs and
benchmark figures are in ``docs/index.md``.

Each code is cut into ``m`` disjoint substrings (leftover bits are unused: the argument below
only needs the substring distances to sum to at most the full distance). If ``d(q, x) <= t``
and ``t = m * r + a`` (``0 <= a < m``), then one of any chosen ``a + 1`` substrings is within
``r`` of the query's substring, or one of the other ``m - a - 1`` is within ``r - 1`` (otherwise
the distance would be at least ``(a + 1) * (r + 1) + (m - a - 1) * r = t + 1``). Probing every
bucket at those radii and verifying each candidate's full distance therefore returns every
match: no misses.

Per substring there is a direct-addressed CSR table (``starts``) over entries sorted by that
substring. All tables live in one concatenated array pair (codes, slots) so one query is a
fixed, small number of numpy calls whatever ``m`` is. The codes are stored once per table
in table order, so verifying the candidates of a bucket reads contiguous memory. For 64-bit
codes, whose buckets are small, a "slab" additionally copies the first eight codes of every
bucket into one aligned 64-byte row, so a probe costs one cache miss instead of two (offsets,
then codes); only the few fuller buckets go through the CSR arrays.

Updates follow an LSM pattern: adds land in a small delta that is scanned linearly and is
merged into the tables (linear insert, no re-sort) when it exceeds ``delta_limit``; removes set
a tombstone and the tables are compacted (linear filter) when the dead fraction exceeds
``compact_fraction``. All arrays of one state live in a ``_Snapshot``; updates build a new
snapshot and publish it with a single attribute assignment, so a concurrent ``search`` always
sees one consistent state. (The one array shared and written in place, the 64-bit slab, is only
written where older snapshots do not read; see ``_with_slab``.)
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np

_SUPPORTED_BITS = (64, 256)
_MAX_SUBSTRING_BITS = 24  # direct addressing: 2**24 buckets = 64 MiB of int32 offsets per table
# Relative costs per bucket probe and per verified candidate, measured on the benchmark machine
# (see docs/index.md); they only steer the choice of m.
_PROBE_COST = 4.0
_CANDIDATE_COST = {1: 1.0, 4: 1.6}
_EMPTY_IDS = np.empty(0, dtype=np.int64)
_SLAB = 8  # codes per slab row: 8 x uint64 = one 64-byte cache line


def _ball_size(s: int, r: int) -> int:
    return sum(math.comb(s, i) for i in range(r + 1))


def _radii(widths: list[int], t: int) -> list[int]:
    """Per-table probe radius for threshold ``t`` (refined pigeonhole, see module docstring).

    The ``a + 1`` tables probed at the larger radius are the narrowest ones (cheapest balls).
    """
    m = len(widths)
    r, a = divmod(t, m)
    order = sorted(range(m), key=lambda j: widths[j])
    radii = [r - 1] * m
    for j in order[: a + 1]:
        radii[j] = r
    return radii


def _expected_cost(widths: list[int], t: int, n: int, words: int) -> float:
    cost = 0.0
    for s, r in zip(widths, _radii(widths, t), strict=True):
        if r >= 0:
            ball = _ball_size(s, r)
            cost += ball * (_PROBE_COST + _CANDIDATE_COST[words] * n / 2**s)
    return cost


@dataclass(frozen=True, eq=False)
class _Layout:
    """How codes are cut into substrings and where each table's buckets start.

    Table ``j`` reads bits ``[shift_j, shift_j + width_j)`` of 64-bit word ``word_j``. Tables are
    ordered by decreasing width and ``base_j`` is the table's first bucket; every ``base_j`` is a
    multiple of ``2**width_j``, so ``(key | base) ^ flip == (key ^ flip) + base``.
    """

    words: int
    widths: tuple[int, ...]
    word_idx: np.ndarray
    shifts: np.ndarray
    masks: np.ndarray
    bases: np.ndarray
    n_buckets: int
    _probes: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def choose(cls, bits: int, max_threshold: int, n: int) -> _Layout:
        """Pick substrings per word minimising the modelled query cost at ``n`` entries."""
        words = bits // 64
        # Bucket tables much larger than n only cost memory: cap the width near log2(n).
        cap = min(_MAX_SUBSTRING_BITS, max(8, math.ceil(math.log2(max(n, 2))) + 1))
        splits = [[64 // parts] * parts for parts in range(math.ceil(64 / cap), 17)]
        best = min(splits, key=lambda w: _expected_cost(w * words, max_threshold, n, words))
        return cls.from_widths(words, best)

    @classmethod
    def from_widths(cls, words: int, per_word: list[int]) -> _Layout:
        """Layout with the same split ``per_word`` (widths summing to <= 64) in every word."""
        tables = []
        for w in range(words):
            shift = 0
            for s in per_word:
                tables.append((s, w, shift))
                shift += s
        tables.sort(key=lambda x: -x[0])
        bases, total = [], 0
        for s, _, _ in tables:
            bases.append(total)
            total += 1 << s
        return cls(
            words=words,
            widths=tuple(s for s, _, _ in tables),
            word_idx=np.array([w for _, w, _ in tables], dtype=np.intp),
            shifts=np.array([sh for _, _, sh in tables], dtype=np.uint64),
            masks=np.array([(1 << s) - 1 for s, _, _ in tables], dtype=np.uint64),
            bases=np.array(bases, dtype=np.uint64),
            n_buckets=total,
        )

    @property
    def m(self) -> int:
        return len(self.widths)

    def keys(self, words: np.ndarray) -> np.ndarray:
        """Global bucket numbers, shape ``(n, m)``, for codes given as ``(n, words)`` uint64."""
        keys = ((words[:, self.word_idx] >> self.shifts) & self.masks) | self.bases
        return keys.astype(np.intp)

    def probes(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(table, flip)`` per bucket probe for threshold ``t``; cached per threshold.

        The cache is filled idempotently, so a race between threads only repeats work.
        """
        cached = self._probes.get(t)
        if cached is not None:
            return cached
        tables, flips = [], []
        for j, (s, r) in enumerate(zip(self.widths, _radii(list(self.widths), t), strict=True)):
            for k in range(r + 1):
                for bits in itertools.combinations(range(s), k):
                    tables.append(j)
                    flips.append(sum(1 << b for b in bits))
        result = (np.array(tables, dtype=np.intp), np.array(flips, dtype=np.intp))
        self._probes[t] = result
        return result

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes + b.nbytes for a, b in self._probes.values())


@dataclass(frozen=True, eq=False)
class _Snapshot:
    """One immutable index state. Slot = position of an entry in ``ids``/``alive``.

    ``codes``/``slots`` hold every table's entries (all slots, dead ones included) sorted by
    global bucket; bucket ``g`` is ``[starts[g], starts[g + 1])``. ``sorted_ids`` (unique)
    and ``sorted_slots`` map each id in the tables to its slot (dead ones until compaction).
    ``delta_*`` are entries not yet merged into the tables. ``slab`` (64-bit codes only) holds
    the first ``_SLAB`` codes of each bucket (padded with neighbours); ``overfull`` marks the
    buckets with more entries than that.
    """

    layout: _Layout | None
    starts: np.ndarray
    codes: np.ndarray
    slots: np.ndarray
    ids: np.ndarray
    alive: np.ndarray
    sorted_ids: np.ndarray
    sorted_slots: np.ndarray
    n_dead: int
    delta_ids: np.ndarray
    delta_codes: np.ndarray
    layout_n: int
    slab: np.ndarray | None = None
    overfull: np.ndarray | None = None

    @property
    def n_slots(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return self.n_slots - self.n_dead + len(self.delta_ids)

    @property
    def nbytes(self) -> int:
        arrays = (
            self.starts,
            self.codes,
            self.slots,
            self.ids,
            self.alive,
            self.sorted_ids,
            self.sorted_slots,
            self.delta_ids,
            self.delta_codes,
        )
        derived = sum(a.nbytes for a in (self.slab, self.overfull) if a is not None)
        layout = 0 if self.layout is None else self.layout.nbytes
        return sum(a.nbytes for a in arrays) + derived + layout


def _empty_snapshot(words: int) -> _Snapshot:
    return _Snapshot(
        layout=None,
        starts=np.zeros(1, dtype=np.int64),
        codes=np.empty((0, words), dtype=np.uint64),
        slots=np.empty(0, dtype=np.int32),
        ids=_EMPTY_IDS,
        alive=np.empty(0, dtype=bool),
        sorted_ids=_EMPTY_IDS,
        sorted_slots=np.empty(0, dtype=np.int32),
        n_dead=0,
        delta_ids=_EMPTY_IDS,
        delta_codes=np.empty((0, words), dtype=np.uint64),
        layout_n=0,
    )


def _slab_rows(codes: np.ndarray, starts: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """The first ``_SLAB`` codes of each bucket, padded with the codes that follow it."""
    rows = starts[buckets][:, None] + np.arange(_SLAB)
    return codes.take(np.minimum(rows, len(codes) - 1))


def _with_slab(snap: _Snapshot, touched: np.ndarray | None = None) -> _Snapshot:
    """Attach the slab (see ``_Snapshot``) for 64-bit codes; other widths use the CSR only.

    With ``touched`` (after a merge), only those buckets' rows are rewritten, in place: a merge
    appends entries at the end of buckets, so the columns an older snapshot reads (below its
    own bucket counts) keep their values and concurrent searches stay correct.
    """
    if snap.layout is None or snap.layout.words != 1:
        return snap
    codes = snap.codes.reshape(-1)
    overfull = np.diff(snap.starts) > _SLAB
    if touched is not None and snap.slab is not None:
        snap.slab[touched] = _slab_rows(codes, snap.starts, touched)
        return replace(snap, overfull=overfull)
    n_buckets = len(snap.starts) - 1
    # Allocate 64 bytes more and start at a cache-line boundary: a row is then exactly one line.
    buf = np.empty(n_buckets * _SLAB + 8, dtype=np.uint64)
    skip = (-buf.ctypes.data % 64) // 8
    slab = buf[skip : skip + n_buckets * _SLAB].reshape(-1, _SLAB)
    for lo in range(0, n_buckets, 1 << 20):  # bounded temporaries
        hi = min(lo + (1 << 20), n_buckets)
        slab[lo:hi] = _slab_rows(codes, snap.starts, np.arange(lo, hi))
    return replace(snap, slab=slab, overfull=overfull)


def _distances(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of ``codes`` ``(n, words)`` and ``q`` ``(words,)``."""
    if codes.shape[1] == 1:
        return np.bitwise_count(codes[:, 0] ^ q[0])
    # XOR against a tiled query (a broadcast over a length-4 inner axis is much slower), then
    # add the four per-word counts packed in a uint32 with one multiply. The byte sum wraps
    # only at 256 (all bits differ), which callers exclude with ``_all_differ``.
    x = codes.reshape(-1) ^ q[None, :].repeat(len(codes), axis=0).reshape(-1)
    counts = np.bitwise_count(x).view(np.uint32)
    return (counts * np.uint32(0x01010101)) >> np.uint32(24)


def _all_differ(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (codes == ~q).all(axis=1)


def _find_slots(snap: _Snapshot, ids: np.ndarray) -> np.ndarray:
    """Slot of each id in the tables (live or dead), or -1 if it is not there."""
    if len(snap.sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(snap.sorted_ids, ids), len(snap.sorted_ids) - 1)
    return np.where(snap.sorted_ids[pos] == ids, snap.sorted_slots[pos], -1)


def _sort_by_bucket(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative keys < 2**32 using two 16-bit radix passes."""
    low = np.argsort(keys.astype(np.uint16), kind="stable")
    if keys.max(initial=0) < 1 << 16:
        return low
    high = (keys[low] >> 16).astype(np.uint16)
    return low[np.argsort(high, kind="stable")]


def _offsets_dtype(n: int) -> type[np.signedinteger]:
    return np.int32 if n < 2**31 else np.int64


class HammingIndex:
    """Exact Hamming range search over 64-bit or 256-bit codes with incremental updates.

    ``search`` may run concurrently with one updating thread: updates are serialised by a lock
    and publish a new immutable snapshot atomically; ``search`` never locks.
    """

    def __init__(
        self,
        bits: int,
        max_threshold: int,
        *,
        delta_limit: int = 4096,
        compact_fraction: float = 0.25,
    ) -> None:
        """``delta_limit`` and ``compact_fraction`` tune merging/compaction (tests lower them)."""
        if bits not in _SUPPORTED_BITS:
            raise ValueError(f"bits must be one of {_SUPPORTED_BITS}, got {bits}")
        if not 0 <= max_threshold <= bits // 2:
            raise ValueError(f"max_threshold must be in [0, {bits // 2}], got {max_threshold}")
        if delta_limit < 1:
            raise ValueError(f"delta_limit must be positive, got {delta_limit}")
        self.bits = bits
        self.max_threshold = max_threshold
        self._words = bits // 64
        self._delta_limit = delta_limit
        self._compact_fraction = compact_fraction
        self._lock = threading.Lock()
        self._snap = _empty_snapshot(self._words)

    def __len__(self) -> int:
        """Number of live entries."""
        return len(self._snap)

    @property
    def nbytes(self) -> int:
        """Bytes held by the index arrays (tables, ids, tombstones, delta, probe masks)."""
        return self._snap.nbytes

    # -- input handling -------------------------------------------------------------------

    def _as_words(self, codes: np.ndarray, batch: bool) -> np.ndarray:
        """View uint8 codes (big-endian hex bytes) as ``(n, words)`` native uint64 words.

        Distances do not depend on the byte order inside a word, only on using one order.
        """
        nbytes = self.bits // 8
        expected = f"(n, {nbytes})" if batch else f"({nbytes},)"
        shape_ok = (
            codes.ndim == 2 and codes.shape[1] == nbytes if batch else codes.shape == (nbytes,)
        )
        if codes.dtype != np.uint8 or not shape_ok:
            raise ValueError(
                f"{self.bits}-bit codes must be uint8 arrays of shape {expected}, "
                f"got dtype {codes.dtype} shape {codes.shape}"
            )
        return np.ascontiguousarray(codes).view(np.uint64).reshape(-1, self._words)

    @staticmethod
    def _as_ids(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 1-d integer array, got {ids.dtype} {ids.shape}")
        return ids.astype(np.int64, copy=False)

    # -- search ---------------------------------------------------------------------------

    def search(self, code: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """All live entries within ``threshold`` (inclusive) of ``code``.

        Returns ``(ids, distances)`` as int64 arrays sorted by distance, then id.
        """
        if not 0 <= threshold <= self.max_threshold:
            raise ValueError(
                f"threshold must be in [0, {self.max_threshold}] (the index's max_threshold), "
                f"got {threshold}"
            )
        q = self._as_words(code, batch=False)[0]
        snap = self._snap
        found_ids, found_dist = [], []
        if snap.layout is not None:
            ids, dist = self._search_tables(snap, snap.layout, q, threshold)
            found_ids.append(ids)
            found_dist.append(dist)
        if len(snap.delta_ids):
            d = _distances(snap.delta_codes, q)
            hits = np.flatnonzero(d <= threshold)
            if self._words > 1 and not d[hits].all():
                hits = hits[~_all_differ(snap.delta_codes[hits], q)]
            found_ids.append(snap.delta_ids[hits])
            found_dist.append(d[hits])
        if not found_ids:
            return _EMPTY_IDS, _EMPTY_IDS
        ids = np.concatenate(found_ids)
        dist = np.concatenate(found_dist).astype(np.int64)
        order = np.lexsort((ids, dist))
        return ids[order], dist[order]

    @staticmethod
    def _search_tables(
        snap: _Snapshot, layout: _Layout, q: np.ndarray, t: int
    ) -> tuple[np.ndarray, np.ndarray]:
        tables, flips = layout.probes(t)
        buckets = layout.keys(q[None, :])[0][tables]
        buckets ^= flips
        rows, dists = [], []
        skip = 0
        if snap.slab is not None and snap.overfull is not None:
            x = snap.slab.take(buckets, axis=0)
            x ^= q[0]
            d = np.bitwise_count(x).reshape(-1)
            hits = np.flatnonzero(d <= t)
            if len(hits):
                probe, col = np.divmod(hits, _SLAB)
                lo = snap.starts[buckets[probe]]
                real = col < snap.starts[buckets[probe] + 1] - lo  # not padding
                rows.append(lo[real] + col[real])
                dists.append(d[hits[real]])
            # Only the entries beyond the slab row remain, in the few overfull buckets.
            buckets = buckets[snap.overfull.take(buckets)]
            skip = _SLAB
        if len(buckets):
            lo = snap.starts[buckets] + skip
            lens = snap.starts[buckets + 1] - lo
            ends = np.cumsum(lens)
            # Concatenate the ranges [lo, lo + len) without a Python loop.
            cand_rows = np.repeat(lo - ends + lens, lens) + np.arange(ends[-1])
            cand = snap.codes.take(cand_rows, axis=0)
            d = _distances(cand, q)
            hits = np.flatnonzero(d <= t)
            if layout.words > 1 and len(hits) and not d[hits].all():
                hits = hits[~_all_differ(cand[hits], q)]
            rows.append(cand_rows[hits])
            dists.append(d[hits])
        if not rows:
            return _EMPTY_IDS, _EMPTY_IDS
        rows_hit = np.concatenate(rows)
        if len(rows_hit) == 0:
            return _EMPTY_IDS, _EMPTY_IDS
        # An entry can be found through several tables: keep one hit per slot.
        slots, first = np.unique(snap.slots[rows_hit], return_index=True)
        live = snap.alive[slots]
        return snap.ids[slots[live]], np.concatenate(dists)[first[live]]

    # -- updates --------------------------------------------------------------------------

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Insert entries; an id that is already present is replaced.

        Within one call a repeated id keeps its last code.
        """
        ids = self._as_ids(ids)
        words = self._as_words(codes, batch=True)
        if len(ids) != len(words):
            raise ValueError(f"got {len(ids)} ids but {len(words)} codes")
        if len(ids) == 0:
            return
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        keep_last = np.append(sorted_ids[1:] != sorted_ids[:-1], True)
        order = order[keep_last]
        ids, words = ids[order], words[order]  # now sorted by id, unique
        with self._lock:
            snap = self._remove_locked(self._snap, ids)
            delta_ids = np.concatenate([snap.delta_ids, ids])
            delta_codes = np.concatenate([snap.delta_codes, words])
            if len(delta_ids) > self._delta_limit:
                snap = self._merge(snap, delta_ids, delta_codes)
            else:
                snap = replace(snap, delta_ids=delta_ids, delta_codes=delta_codes)
            self._snap = self._maybe_compact(snap)

    def remove(self, ids: np.ndarray) -> int:
        """Remove entries by id; unknown ids are ignored. Returns how many were removed."""
        ids = np.sort(self._as_ids(ids))
        if len(ids) == 0:
            return 0
        ids = ids[np.append(True, ids[1:] != ids[:-1])]  # np.unique is slow on large arrays
        with self._lock:
            before = len(self._snap)
            snap = self._maybe_compact(self._remove_locked(self._snap, ids))
            self._snap = snap
            return before - len(snap)

    @staticmethod
    def _remove_locked(snap: _Snapshot, ids: np.ndarray) -> _Snapshot:
        """Snapshot without ``ids`` (sorted, unique): tombstones in the tables, drop from delta."""
        changes: dict[object, object] = {}
        if len(snap.delta_ids):
            in_delta = np.isin(snap.delta_ids, ids)
            if in_delta.any():
                changes["delta_ids"] = snap.delta_ids[~in_delta]
                changes["delta_codes"] = snap.delta_codes[~in_delta]
        slots = _find_slots(snap, ids)
        slots = slots[slots >= 0]
        slots = slots[snap.alive[slots]]
        if len(slots):
            alive = snap.alive.copy()  # copy-on-write: the published snapshot stays intact
            alive[slots] = False
            changes.update(alive=alive, n_dead=snap.n_dead + len(slots))
        return replace(snap, **changes) if changes else snap

    def _merge(self, snap: _Snapshot, ids: np.ndarray, words: np.ndarray) -> _Snapshot:
        """Move the delta (``ids``, ``words``; ids not in the tables) into the tables."""
        live = snap.n_slots - snap.n_dead
        n_after = live + len(ids)
        if snap.layout is None or len(ids) >= live // 2 or n_after > 4 * snap.layout_n:
            return self._build(snap, ids, words)
        layout = snap.layout
        by_id = np.argsort(ids)  # np.insert into sorted_ids below needs sorted ids
        ids, words = ids[by_id], words[by_id]
        n_new = len(ids)
        new_slots = np.arange(snap.n_slots, snap.n_slots + n_new)
        buckets = layout.keys(words).reshape(-1)  # entry-major, m per entry
        # Append each new entry at the end of its bucket in every table: one linear copy of the
        # tables, no re-sort. Entries going to the same offset (empty buckets in between) must
        # be given in bucket order, which np.insert keeps.
        order = np.argsort(buckets, kind="stable")
        at = snap.starts[buckets[order] + 1]
        entry = order // layout.m
        codes = np.insert(snap.codes, at, words[entry], axis=0)
        dtype = _offsets_dtype(len(codes))
        slots = np.insert(snap.slots.astype(dtype, copy=False), at, new_slots[entry])
        counts = np.bincount(buckets, minlength=layout.n_buckets)
        starts = snap.starts.astype(dtype, copy=True)
        starts[1:] += np.cumsum(counts, dtype=dtype)
        # Ids still listed with a dead slot get the new slot; the others are inserted.
        old = _find_slots(snap, ids) >= 0
        id_pos = np.searchsorted(snap.sorted_ids, ids)
        sorted_slots = snap.sorted_slots.astype(dtype)
        sorted_slots[id_pos[old]] = new_slots[old]
        updated = replace(
            snap,
            starts=starts,
            codes=codes,
            slots=slots,
            ids=np.concatenate([snap.ids, ids]),
            alive=np.concatenate([snap.alive, np.ones(n_new, dtype=bool)]),
            sorted_ids=np.insert(snap.sorted_ids, id_pos[~old], ids[~old]),
            sorted_slots=np.insert(sorted_slots, id_pos[~old], new_slots[~old]),
            delta_ids=_EMPTY_IDS,
            delta_codes=np.empty((0, self._words), dtype=np.uint64),
        )
        return _with_slab(updated, np.unique(buckets))

    def _live_base(self, snap: _Snapshot) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, words)`` of the live entries in the tables (read from the first table)."""
        first = slice(0, snap.n_slots)
        slots = snap.slots[first]
        live = snap.alive[slots]
        return snap.ids[slots[live]], snap.codes[first][live]

    def _build(self, snap: _Snapshot, ids: np.ndarray, words: np.ndarray) -> _Snapshot:
        """Rebuild all tables (new layout for the current size) from live entries plus delta."""
        if snap.layout is not None:
            base_ids, base_words = self._live_base(snap)
            ids = np.concatenate([base_ids, ids])
            words = np.concatenate([base_words, words])
        n = len(ids)
        if n == 0:
            return _empty_snapshot(self._words)
        layout = _Layout.choose(self.bits, self.max_threshold, n)
        buckets = layout.keys(words)  # (n, m)
        dtype = _offsets_dtype(n * layout.m)
        slots = np.empty(n * layout.m, dtype=dtype)
        for j in range(layout.m):
            slots[j * n : (j + 1) * n] = _sort_by_bucket(buckets[:, j] - int(layout.bases[j]))
        counts = np.bincount(buckets.reshape(-1), minlength=layout.n_buckets)
        starts = np.zeros(layout.n_buckets + 1, dtype=dtype)
        np.cumsum(counts, out=starts[1:])
        id_order = np.argsort(ids, kind="stable")
        snap = _Snapshot(
            layout=layout,
            starts=starts,
            codes=words.take(slots, axis=0),
            slots=slots,
            ids=ids,
            alive=np.ones(n, dtype=bool),
            sorted_ids=ids[id_order],
            sorted_slots=id_order.astype(dtype),
            n_dead=0,
            delta_ids=_EMPTY_IDS,
            delta_codes=np.empty((0, self._words), dtype=np.uint64),
            layout_n=n,
        )
        return _with_slab(snap)

    def _maybe_compact(self, snap: _Snapshot) -> _Snapshot:
        """Drop tombstoned entries once they exceed ``compact_fraction`` of the table slots.

        A linear, order-preserving filter of the table arrays: no sort, no layout change. If
        the index shrank below a quarter of the size its layout was chosen for, rebuild instead
        (a smaller layout; the mirror of the growth rule in ``_merge``).
        """
        if snap.n_dead <= self._compact_fraction * snap.n_slots:
            return snap
        if 4 * (snap.n_slots - snap.n_dead) < snap.layout_n:
            return self._build(snap, snap.delta_ids, snap.delta_codes)
        keep = snap.alive[snap.slots]
        listed_alive = snap.alive[snap.sorted_slots]
        new_slot = np.cumsum(snap.alive) - 1
        dropped_before = np.concatenate([[0], np.cumsum(~keep)])
        dtype = snap.starts.dtype
        compacted = replace(
            snap,
            starts=(snap.starts - dropped_before[snap.starts]).astype(dtype),
            codes=snap.codes[keep],
            slots=new_slot[snap.slots[keep]].astype(dtype),
            ids=snap.ids[snap.alive],
            alive=np.ones(snap.n_slots - snap.n_dead, dtype=bool),
            sorted_ids=snap.sorted_ids[listed_alive],
            sorted_slots=new_slot[snap.sorted_slots[listed_alive]].astype(dtype),
            n_dead=0,
        )
        return _with_slab(compacted)
