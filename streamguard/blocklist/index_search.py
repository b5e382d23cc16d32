"""The query path of the Hamming index: probe the buckets, verify the candidates.

Verification gathers each candidate's first half and reads the second only for the few whose
first half is within the threshold. For 64-bit codes the slab answers most probes in one
cache line; only the few fuller buckets go through the CSR arrays (``index_snapshot``).
"""

from __future__ import annotations

import numpy as np

from streamguard.blocklist.index_layout import Layout
from streamguard.blocklist.index_snapshot import EMPTY_I32, SLAB, Snapshot

EMPTY_IDS = np.empty(0, dtype=np.int64)


def _distances(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of ``codes`` ``(n, 1 or 2)`` and ``q`` ``(1 or 2,)``."""
    if codes.shape[1] == 1:
        distances: np.ndarray = np.bitwise_count(codes[:, 0] ^ q[0])
        return distances
    # XOR against a tiled query (a broadcast over the short word axis is much slower), then add
    # the two per-word counts (<= 64 each) packed in a uint16 with one multiply.
    x = codes.reshape(-1) ^ q[None, :].repeat(len(codes), axis=0).reshape(-1)
    counts = np.bitwise_count(x).view(np.uint16)
    packed: np.ndarray = (counts * np.uint16(0x0101)) >> np.uint16(8)
    return packed


def verify(
    codes: np.ndarray, slots: np.ndarray | None, q: np.ndarray, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``slots`` (all of ``codes`` if None) within ``t`` of ``q``, and distances.

    ``codes`` are split in parts (see ``split_codes``), ``q`` is ``(words,)``. The second part is
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


def search_tables(
    snap: Snapshot, layout: Layout, q: np.ndarray, t: int
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
            probe, col = np.divmod(hits, SLAB)
            lo = snap.starts[buckets[probe]]
            real = col < snap.starts[buckets[probe] + 1] - lo  # not padding
            found.append(snap.slots[lo[real] + col[real]])
            dists.append(d[hits[real]])
        # Only the entries beyond the slab row remain, in the few overfull buckets.
        buckets = buckets[snap.overfull.take(buckets)]
        skip = SLAB
    if len(buckets):
        lo = snap.starts.take(buckets) + skip
        lens = snap.starts.take(buckets + 1) - lo
        ends = np.cumsum(lens)
        # Concatenate the ranges [lo, lo + len) without a Python loop.
        cand = snap.slots.take(np.repeat(lo - ends + lens, lens) + np.arange(ends[-1]))
        hits, d = verify(snap.codes, cand, q, t)
        found.append(cand[hits])
        dists.append(d)
    slots = np.concatenate(found) if found else EMPTY_I32
    dist = np.concatenate(dists) if dists else EMPTY_IDS
    if len(slots) > 1:  # an entry can be found through several tables: keep one hit
        slots, first = np.unique(slots, return_index=True)
        dist = dist[first]
    live = snap.alive[slots]
    return snap.ids[slots[live]], dist[live]
