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

Per substring there is a direct-addressed CSR table (``starts``) over the entries' slots sorted
by that substring. Every code is stored once, by slot (a 256-bit code as two 128-bit halves in
two arrays); the tables hold only int32 slots. Verification gathers each candidate's first half
and reads the second only for the few whose first half is within the threshold. All tables
live in one concatenated ``slots`` array so one query is a fixed, small number of numpy calls
whatever ``m`` is. For 64-bit codes, whose buckets are small, a "slab" additionally copies the first
eight codes of every bucket into one aligned 64-byte row, so a probe costs one cache miss
instead of three (offsets, slots, codes); only the few fuller buckets go through the CSR arrays.

Ids are small non-negative integers (the caller's entry numbers): ``slot_of`` maps them to slots
directly, an int32 array as long as the largest id, instead of a sorted id table.

Updates follow an LSM pattern: adds land in a small delta that is scanned linearly and is
merged into the tables (codes appended, slots inserted linearly, no re-sort) when it exceeds
``delta_limit``; removes set a tombstone and the tables are compacted (linear filter) when the
dead fraction exceeds ``compact_fraction``. All arrays of one state live in a ``_Snapshot``;
updates build a new snapshot and publish it with a single attribute assignment, so a concurrent
``search`` always sees one consistent state. (The one array shared and written in place, the
64-bit slab, is only written where older snapshots do not read; see ``_with_slab``.)
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
_CANDIDATE_COST = {1: 1.0, 4: 3.0}
_EMPTY_IDS = np.empty(0, dtype=np.int64)
_EMPTY_I32 = np.empty(0, dtype=np.int32)
_MAX_ID = np.iinfo(np.int32).max
_SLAB = 8  # codes per slab row: 8 x uint64 = one 64-byte cache line
_PART_WORDS = 2  # 256-bit codes are stored as two 128-bit parts (see ``_verify``)


def _words_per_part(words: int) -> int:
    return min(words, _PART_WORDS)


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
        # Memory term: at most 2n buckets per table, so its offsets never take more than twice
        # the memory of its slots. (Without it, PDQ would switch to 12 x 21 bits at ~0.7M
        # entries: faster, but with 100 MB of offsets.)
        cap = min(_MAX_SUBSTRING_BITS, max(8, n.bit_length()))
        splits = [[64 // parts] * parts for parts in range(1, 17) if 64 // parts <= cap]
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

    def table_keys(self, codes: np.ndarray, j: int) -> np.ndarray:
        """Bucket numbers within table ``j`` (without its base) of split ``codes``, ``(n,)``."""
        part, col = divmod(int(self.word_idx[j]), codes.shape[2])
        keys = codes[part, :, col] >> self.shifts[j]
        keys &= self.masks[j]
        return keys.astype(np.uint32)

    def keys(self, codes: np.ndarray) -> np.ndarray:
        """Global bucket numbers, shape ``(m, n)``, of split ``codes`` (see ``_split``)."""
        part, col = np.divmod(self.word_idx, codes.shape[2])
        words = codes[part, :, col]
        keys = ((words >> self.shifts[:, None]) & self.masks[:, None]) | self.bases[:, None]
        return keys.astype(np.intp)

    def probe_buckets(self, q: np.ndarray, t: int) -> np.ndarray:
        """The bucket of every probe for the query words ``q`` ``(words,)`` at threshold ``t``."""
        tables, flips = self.probes(t)
        keys = ((q[self.word_idx] >> self.shifts) & self.masks) | self.bases
        return keys.view(np.intp).take(tables) ^ flips

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
    """One immutable index state. Slot = position of an entry in ``codes``/``ids``/``alive``.

    ``codes`` is ``(parts, slots, words per part)`` (see ``_split``). ``slots`` lists every
    table's entries (all slots, dead ones included) sorted by global bucket; bucket ``g`` is
    ``slots[starts[g]:starts[g + 1]]``. ``slot_of[id]`` is the id's slot in the tables (a dead
    one until compaction) or -1. ``delta_*`` are entries not yet merged into the tables.
    ``slab`` (64-bit codes only) holds the first ``_SLAB`` codes of each bucket (padded with
    neighbours); ``overfull`` marks the buckets with more entries.
    """

    layout: _Layout | None
    starts: np.ndarray
    slots: np.ndarray
    codes: np.ndarray
    ids: np.ndarray
    alive: np.ndarray
    slot_of: np.ndarray
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
            self.slots,
            self.codes,
            self.ids,
            self.alive,
            self.slot_of,
            self.delta_ids,
            self.delta_codes,
        )
        derived = sum(a.nbytes for a in (self.slab, self.overfull) if a is not None)
        layout = 0 if self.layout is None else self.layout.nbytes
        return sum(a.nbytes for a in arrays) + derived + layout


def _no_codes(words: int) -> np.ndarray:
    """Split codes (see ``_split``) of no entries."""
    per_part = _words_per_part(words)
    return np.empty((words // per_part, 0, per_part), dtype=np.uint64)


def _empty_snapshot(words: int) -> _Snapshot:
    return _Snapshot(
        layout=None,
        starts=np.zeros(1, dtype=np.int32),
        slots=_EMPTY_I32,
        codes=_no_codes(words),
        ids=_EMPTY_I32,
        alive=np.empty(0, dtype=bool),
        slot_of=_EMPTY_I32,
        n_dead=0,
        delta_ids=_EMPTY_I32,
        delta_codes=_no_codes(words),
        layout_n=0,
    )


def _split(words: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``words`` ``(n, words)`` as contiguous ``(parts, len(rows), per part)``.

    Verification reads the first part of every candidate but the second only for the few
    whose first part is already close enough; one part per array keeps those reads compact.
    """
    per_part = _words_per_part(words.shape[1])
    grouped = words.reshape(len(words), -1, per_part)
    codes = np.empty((grouped.shape[1], len(rows), per_part), dtype=np.uint64)
    for p in range(len(codes)):
        np.take(grouped[:, p], rows, axis=0, out=codes[p])
    return codes


def _slab_rows(snap: _Snapshot, buckets: np.ndarray) -> np.ndarray:
    """The first ``_SLAB`` codes of each bucket, padded with the codes that follow it."""
    rows = snap.starts[buckets][:, None] + np.arange(_SLAB)
    slots = snap.slots.take(np.minimum(rows, len(snap.slots) - 1))
    return snap.codes.reshape(-1).take(slots)


def _with_slab(snap: _Snapshot, touched: np.ndarray | None = None) -> _Snapshot:
    """Attach the slab (see ``_Snapshot``) for 64-bit codes; other widths use the CSR only.

    With ``touched`` (after a merge), only those buckets' rows are rewritten, in place: a merge
    appends entries at the end of buckets, so the columns an older snapshot reads (below its
    own bucket counts) keep their values and concurrent searches stay correct.
    """
    if snap.layout is None or snap.layout.words != 1:
        return snap
    overfull = np.diff(snap.starts) > _SLAB
    if touched is not None and snap.slab is not None:
        snap.slab[touched] = _slab_rows(snap, touched)
        return replace(snap, overfull=overfull)
    n_buckets = len(snap.starts) - 1
    # Allocate 64 bytes more and start at a cache-line boundary: a row is then exactly one line.
    buf = np.empty(n_buckets * _SLAB + 8, dtype=np.uint64)
    skip = (-buf.ctypes.data % 64) // 8
    slab = buf[skip : skip + n_buckets * _SLAB].reshape(-1, _SLAB)
    for lo in range(0, n_buckets, 1 << 20):  # bounded temporaries
        hi = min(lo + (1 << 20), n_buckets)
        slab[lo:hi] = _slab_rows(snap, np.arange(lo, hi))
    return replace(snap, slab=slab, overfull=overfull)


def _distances(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of ``codes`` ``(n, 1 or 2)`` and ``q`` ``(1 or 2,)``."""
    if codes.shape[1] == 1:
        return np.bitwise_count(codes[:, 0] ^ q[0])
    # XOR against a tiled query (a broadcast over the short word axis is much slower), then add
    # the two per-word counts (<= 64 each) packed in a uint16 with one multiply.
    x = codes.reshape(-1) ^ q[None, :].repeat(len(codes), axis=0).reshape(-1)
    counts = np.bitwise_count(x).view(np.uint16)
    return (counts * np.uint16(0x0101)) >> np.uint16(8)


def _verify(
    codes: np.ndarray, slots: np.ndarray | None, q: np.ndarray, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``slots`` (all of ``codes`` if None) within ``t`` of ``q``, and distances.

    ``codes`` are split in parts (see ``_split``), ``q`` is ``(words,)``. The second part is
    read only for candidates whose first part is within ``t``: for unrelated codes, almost none.
    """
    q = q.reshape(len(codes), -1)
    first = codes[0] if slots is None else codes[0].take(slots, axis=0)
    d = _distances(first, q[0])
    hits = np.flatnonzero(d <= t)
    d = d[hits]
    if len(codes) > 1 and len(hits):
        rows = hits if slots is None else slots[hits]
        d = d + _distances(codes[1].take(rows, axis=0), q[1])
        within = np.flatnonzero(d <= t)
        hits, d = hits[within], d[within]
    return hits, d


def _find_slots(snap: _Snapshot, ids: np.ndarray) -> np.ndarray:
    """Slots in the tables (live or dead) of those ``ids`` that have one."""
    ids = ids[(ids >= 0) & (ids < len(snap.slot_of))]
    slots = snap.slot_of[ids]
    return slots[slots >= 0]


def _id_map(ids: np.ndarray, slots: np.ndarray, base: np.ndarray = _EMPTY_I32) -> np.ndarray:
    """A copy of the id -> slot map ``base``, grown to cover ``ids``, with ``ids`` -> ``slots``."""
    size = max(len(base), int(ids.max(initial=-1)) + 1)
    slot_of = np.full(size, -1, dtype=np.int32)
    slot_of[: len(base)] = base
    slot_of[ids] = slots
    return slot_of


def _sort_by_bucket(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative keys < 2**32 using two 16-bit radix passes."""
    low = np.argsort(keys.astype(np.uint16), kind="stable")
    if keys.max(initial=0) < 1 << 16:
        return low
    high = (keys >> 16).astype(np.uint16)  # gathered as 2-byte values, not 4- or 8-byte ones
    return low.take(np.argsort(high.take(low), kind="stable"))


def _offsets_dtype(n: int) -> type[np.signedinteger]:
    return np.int32 if n < 2**31 else np.int64


def _counts(layout: _Layout, codes: np.ndarray) -> np.ndarray:
    """Entries per global bucket of split ``codes``; one table at a time bounds temporaries."""
    counts = np.empty(layout.n_buckets, dtype=np.int32)
    for j, s in enumerate(layout.widths):
        base = int(layout.bases[j])
        counts[base : base + (1 << s)] = np.bincount(layout.table_keys(codes, j), minlength=1 << s)
    return counts


def _tables(layout: _Layout, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, slots)`` of all tables over split ``codes``, built one table at a time."""
    n = codes.shape[1]
    slots = np.empty(n * layout.m, dtype=np.int32)
    for j in range(layout.m):
        slots[j * n : (j + 1) * n] = _sort_by_bucket(layout.table_keys(codes, j))
    starts = np.zeros(layout.n_buckets + 1, dtype=_offsets_dtype(len(slots)))
    np.cumsum(_counts(layout, codes), out=starts[1:])
    return starts, slots


class HammingIndex:
    """Exact Hamming range search over 64-bit or 256-bit codes with incremental updates.

    Ids must be integers in ``[0, 2**31 - 1]``; the id -> slot map costs 4 bytes per id up to
    the largest one, so ids should be dense (entry numbers), not arbitrary keys.

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
        """Bytes held by the index arrays (tables, codes, ids, tombstones, delta, probe masks)."""
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

    @staticmethod
    def _check_id_range(ids: np.ndarray) -> None:
        if len(ids) and (ids.min() < 0 or ids.max() > _MAX_ID):
            raise ValueError(
                f"ids must be in [0, {_MAX_ID}] (they index a direct id -> slot map), "
                f"got {ids.min()}..{ids.max()}"
            )

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
            hits, dist = _verify(snap.delta_codes, None, q, threshold)
            found_ids.append(snap.delta_ids[hits])
            found_dist.append(dist)
        if not found_ids:
            return _EMPTY_IDS, _EMPTY_IDS
        ids = np.concatenate(found_ids).astype(np.int64)
        dist = np.concatenate(found_dist).astype(np.int64)
        order = np.lexsort((ids, dist))
        return ids[order], dist[order]

    @staticmethod
    def _search_tables(
        snap: _Snapshot, layout: _Layout, q: np.ndarray, t: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and distances of the live table entries within ``t`` of the query."""
        buckets = layout.probe_buckets(q, t)
        found, dists = [], []
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
                found.append(snap.slots[lo[real] + col[real]])
                dists.append(d[hits[real]])
            # Only the entries beyond the slab row remain, in the few overfull buckets.
            buckets = buckets[snap.overfull.take(buckets)]
            skip = _SLAB
        if len(buckets):
            lo = snap.starts[buckets] + skip
            lens = snap.starts[buckets + 1] - lo
            ends = np.cumsum(lens)
            # Concatenate the ranges [lo, lo + len) without a Python loop.
            cand = snap.slots.take(np.repeat(lo - ends + lens, lens) + np.arange(ends[-1]))
            hits, d = _verify(snap.codes, cand, q, t)
            found.append(cand[hits])
            dists.append(d)
        slots = np.concatenate(found) if found else _EMPTY_I32
        dist = np.concatenate(dists) if dists else _EMPTY_IDS
        if len(slots) > 1:  # an entry can be found through several tables: keep one hit
            slots, first = np.unique(slots, return_index=True)
            dist = dist[first]
        live = snap.alive[slots]
        return snap.ids[slots[live]], dist[live]

    # -- updates --------------------------------------------------------------------------

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Insert entries; an id that is already present is replaced.

        Within one call a repeated id keeps its last code.
        """
        ids, split = self._entries(ids, codes)
        if len(ids) == 0:
            return
        with self._lock:
            snap = self._remove_locked(self._snap, ids)
            if len(snap.delta_ids):
                ids = np.concatenate([snap.delta_ids, ids])
                split = np.concatenate([snap.delta_codes, split], axis=1)
            if len(ids) > self._delta_limit:
                snap = self._merge(snap, ids, split)
            else:
                snap = replace(snap, delta_ids=ids, delta_codes=split)
            self._snap = self._maybe_compact(snap)

    def _entries(self, ids: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validated ids (int32, sorted, unique: a repeated id keeps its last code), split codes.

        A separate call so that its temporaries are freed before a bulk build.
        """
        ids = self._as_ids(ids)
        words = self._as_words(codes, batch=True)
        if len(ids) != len(words):
            raise ValueError(f"got {len(ids)} ids but {len(words)} codes")
        self._check_id_range(ids)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        last = np.ones(len(ids), dtype=bool)
        last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
        return sorted_ids[last].astype(np.int32), _split(words, order[last])

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
                changes["delta_codes"] = snap.delta_codes[:, ~in_delta]
        slots = _find_slots(snap, ids)
        slots = slots[snap.alive[slots]]
        if len(slots):
            alive = snap.alive.copy()  # copy-on-write: the published snapshot stays intact
            alive[slots] = False
            changes.update(alive=alive, n_dead=snap.n_dead + len(slots))
        return replace(snap, **changes) if changes else snap

    def _merge(self, snap: _Snapshot, ids: np.ndarray, codes: np.ndarray) -> _Snapshot:
        """Move the delta (``ids``, split ``codes``; ids not live in the tables) into the tables."""
        live = snap.n_slots - snap.n_dead
        if snap.layout is None or len(ids) >= live // 2 or live + len(ids) > 4 * snap.layout_n:
            return self._build(snap, ids, codes)
        layout = snap.layout
        new_slots = np.arange(snap.n_slots, snap.n_slots + len(ids), dtype=np.int32)
        buckets = layout.keys(codes).reshape(-1)  # table-major, len(ids) per table
        # Append each new slot at the end of its bucket in every table: one linear copy of the
        # tables, no re-sort. Slots going to the same offset (empty buckets in between) must
        # be given in bucket order, which np.insert keeps.
        order = np.argsort(buckets, kind="stable")
        at = snap.starts[buckets[order] + 1]
        slots = np.insert(snap.slots, at, new_slots[order % len(ids)])
        dtype = _offsets_dtype(len(slots))
        starts = snap.starts.astype(dtype, copy=True)
        starts[1:] += np.cumsum(_counts(layout, codes), dtype=dtype)
        updated = replace(
            snap,
            starts=starts,
            slots=slots,
            codes=np.concatenate([snap.codes, codes], axis=1),
            ids=np.concatenate([snap.ids, ids]),
            alive=np.concatenate([snap.alive, np.ones(len(ids), dtype=bool)]),
            slot_of=_id_map(ids, new_slots, snap.slot_of),
            delta_ids=_EMPTY_I32,
            delta_codes=_no_codes(self._words),
        )
        return _with_slab(updated, np.unique(buckets))

    def _build(self, snap: _Snapshot, ids: np.ndarray, codes: np.ndarray) -> _Snapshot:
        """Rebuild all tables (new layout for the current size) from live entries plus delta."""
        if snap.layout is not None:
            ids = np.concatenate([snap.ids[snap.alive], ids])
            codes = np.concatenate([snap.codes[:, snap.alive], codes], axis=1)
        n = len(ids)
        if n == 0:
            return _empty_snapshot(self._words)
        layout = _Layout.choose(self.bits, self.max_threshold, n)
        starts, slots = _tables(layout, codes)
        snap = _Snapshot(
            layout=layout,
            starts=starts,
            slots=slots,
            codes=codes,
            ids=ids,
            alive=np.ones(n, dtype=bool),
            slot_of=_id_map(ids, np.arange(n, dtype=np.int32)),
            n_dead=0,
            delta_ids=_EMPTY_I32,
            delta_codes=_no_codes(self._words),
            layout_n=n,
        )
        return _with_slab(snap)

    def _maybe_compact(self, snap: _Snapshot) -> _Snapshot:
        """Drop tombstoned entries once they exceed ``compact_fraction`` of the slots.

        A linear, order-preserving filter of the table arrays: no sort, no layout change. A
        dead slot has one row per table, in the bucket its code gives, so the new ``starts``
        follow from the dead codes alone. If the index shrank below a quarter of the size its
        layout was chosen for, rebuild instead (a smaller layout; the mirror of the growth rule
        in ``_merge``).
        """
        if snap.n_dead <= self._compact_fraction * snap.n_slots:
            return snap
        layout = snap.layout
        if layout is None or 4 * (snap.n_slots - snap.n_dead) < snap.layout_n:
            return self._build(snap, snap.delta_ids, snap.delta_codes)
        starts = snap.starts.copy()
        starts[1:] -= np.cumsum(_counts(layout, snap.codes[:, ~snap.alive]), dtype=starts.dtype)
        new_slot = np.cumsum(snap.alive, dtype=np.int32) - 1
        ids = snap.ids[snap.alive]
        compacted = replace(
            snap,
            starts=starts,
            slots=new_slot.take(snap.slots[snap.alive.take(snap.slots)]),
            codes=snap.codes[:, snap.alive],
            ids=ids,
            alive=np.ones(len(ids), dtype=bool),
            slot_of=_id_map(ids, np.arange(len(ids), dtype=np.int32)),
            n_dead=0,
        )
        return _with_slab(compacted)
