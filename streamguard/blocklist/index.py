"""Exact Hamming range search over 64-bit and 256-bit perceptual hashes.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Exact Search in Hamming Space with
Multi-Index Hashing", TPAMI 2014), vectorised with numpy. Design, parameters, costs and
benchmark figures are in ``docs/index.md``. The parts: how codes are cut into substrings
(``index_layout``), one state's arrays (``index_snapshot``), the query path
(``index_search``); this module validates input, applies updates and publishes states.

Updates follow an LSM pattern: adds land in a small delta that is scanned linearly and is
merged into the tables (codes appended, slots inserted linearly, no re-sort) when it exceeds
``delta_limit``; removes set a tombstone and the tables are compacted (linear filter) when the
dead fraction exceeds ``compact_fraction``. All arrays of one state live in a ``Snapshot``;
updates build a new snapshot and publish it with a single attribute assignment, so a concurrent
``search`` always sees one consistent state. (The one array shared and written in place, the
64-bit slab, is only written where older snapshots do not read; see ``with_slab``.)
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from streamguard.blocklist.index_layout import Layout
from streamguard.blocklist.index_search import EMPTY_IDS, search_tables, verify
from streamguard.blocklist.index_snapshot import (
    EMPTY_I32,
    Snapshot,
    bucket_counts,
    build_tables,
    empty_snapshot,
    find_slots,
    id_map,
    no_codes,
    offsets_dtype,
    split_codes,
    with_slab,
)

_SUPPORTED_BITS = (64, 256)
_MAX_ID = np.iinfo(np.int32).max


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
        self._snap = empty_snapshot(self._words)

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
            ids, dist = search_tables(snap, snap.layout, q, threshold)
            found_ids.append(ids)
            found_dist.append(dist)
        if len(snap.delta_ids):
            hits, dist = verify(snap.delta_codes, None, q, threshold)
            found_ids.append(snap.delta_ids[hits])
            found_dist.append(dist)
        if not found_ids:
            return EMPTY_IDS, EMPTY_IDS
        ids = np.concatenate(found_ids).astype(np.int64)
        dist = np.concatenate(found_dist).astype(np.int64)
        order = np.lexsort((ids, dist))
        return ids[order], dist[order]

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
        return sorted_ids[last].astype(np.int32), split_codes(words, order[last])

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
    def _remove_locked(snap: Snapshot, ids: np.ndarray) -> Snapshot:
        """Snapshot without ``ids`` (sorted, unique): tombstones in the tables, drop from delta."""
        remaining = snap
        if len(snap.delta_ids):
            in_delta = np.isin(snap.delta_ids, ids)
            if in_delta.any():
                delta_ids, delta_codes = snap.delta_ids[~in_delta], snap.delta_codes[:, ~in_delta]
                remaining = replace(remaining, delta_ids=delta_ids, delta_codes=delta_codes)
        slots = find_slots(snap, ids)
        slots = slots[snap.alive[slots]]
        if len(slots):
            alive = snap.alive.copy()  # copy-on-write: the published snapshot stays intact
            alive[slots] = False
            remaining = replace(remaining, alive=alive, n_dead=snap.n_dead + len(slots))
        return remaining

    def _merge(self, snap: Snapshot, ids: np.ndarray, codes: np.ndarray) -> Snapshot:
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
        dtype = offsets_dtype(len(slots))
        starts = snap.starts.astype(dtype, copy=True)
        starts[1:] += np.cumsum(bucket_counts(layout, codes), dtype=dtype)
        updated = replace(
            snap,
            starts=starts,
            slots=slots,
            codes=np.concatenate([snap.codes, codes], axis=1),
            ids=np.concatenate([snap.ids, ids]),
            alive=np.concatenate([snap.alive, np.ones(len(ids), dtype=bool)]),
            slot_of=id_map(ids, new_slots, snap.slot_of),
            delta_ids=EMPTY_I32,
            delta_codes=no_codes(self._words),
        )
        return with_slab(updated, np.unique(buckets))

    def _build(self, snap: Snapshot, ids: np.ndarray, codes: np.ndarray) -> Snapshot:
        """Rebuild all tables (new layout for the current size) from live entries plus delta."""
        if snap.layout is not None:
            ids = np.concatenate([snap.ids[snap.alive], ids])
            codes = np.concatenate([snap.codes[:, snap.alive], codes], axis=1)
        n = len(ids)
        if n == 0:
            return empty_snapshot(self._words)
        layout = Layout.choose(self.bits, self.max_threshold, n)
        starts, slots = build_tables(layout, codes)
        snap = Snapshot(
            layout=layout,
            starts=starts,
            slots=slots,
            codes=codes,
            ids=ids,
            alive=np.ones(n, dtype=bool),
            slot_of=id_map(ids, np.arange(n, dtype=np.int32)),
            n_dead=0,
            delta_ids=EMPTY_I32,
            delta_codes=no_codes(self._words),
            layout_n=n,
        )
        return with_slab(snap)

    def _maybe_compact(self, snap: Snapshot) -> Snapshot:
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
        starts[1:] -= np.cumsum(
            bucket_counts(layout, snap.codes[:, ~snap.alive]), dtype=starts.dtype
        )
        new_slot = np.cumsum(snap.alive, dtype=np.int32) - 1
        ids = snap.ids[snap.alive]
        compacted = replace(
            snap,
            starts=starts,
            slots=new_slot.take(snap.slots[snap.alive.take(snap.slots)]),
            codes=snap.codes[:, snap.alive],
            ids=ids,
            alive=np.ones(len(ids), dtype=bool),
            slot_of=id_map(ids, np.arange(len(ids), dtype=np.int32)),
            n_dead=0,
        )
        return with_slab(compacted)
