"""How a multi-index hash cuts codes into substrings, and which buckets a query probes.

Each code is cut into ``m`` disjoint substrings (leftover bits are unused: the argument below
only needs the substring distances to sum to at most the full distance). If ``d(q, x) <= t``
and ``t = m * r + a`` (``0 <= a < m``), then one of any chosen ``a + 1`` substrings is within
``r`` of the query's substring, or one of the other ``m - a - 1`` is within ``r - 1`` (otherwise
the distance would be at least ``(a + 1) * (r + 1) + (m - a - 1) * r = t + 1``). Probing every
bucket at those radii and verifying each candidate's full distance therefore returns every
match: no misses. The split is chosen by a cost model (docs/index.md).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

_MAX_SUBSTRING_BITS = 24  # direct addressing: 2**24 buckets = 64 MiB of int32 offsets per table
# Relative costs per bucket probe and per verified candidate, measured on the benchmark machine
# (see docs/index.md); they only steer the choice of m. Once the index outgrows the caches a
# probe is two dependent cache misses (offsets, then slots) and a candidate one (its code).
_PROBE_COST = 3.0
_CANDIDATE_COST = {1: 0.75, 4: 1.0}


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
class Layout:
    """How codes are cut into substrings and where each table's buckets start.

    Substrings are laid end to end from bit 0 of the code (bit ``b`` is bit ``b % 64`` of word
    ``b // 64``), so one may straddle two words: table ``j`` reads bits ``[shift_j, 64)`` of
    word ``word_j`` and, when it straddles, the low bits of word ``word_j + 1`` (``high_masks``
    is 0 for the others). Tables are ordered by decreasing width and ``base_j`` is the table's
    first bucket; every ``base_j`` is a multiple of ``2**width_j``, so
    ``(key | base) ^ flip == (key ^ flip) + base``.
    """

    words: int
    widths: tuple[int, ...]
    word_idx: np.ndarray
    high_idx: np.ndarray
    shifts: np.ndarray
    high_shifts: np.ndarray
    masks: np.ndarray
    high_masks: np.ndarray
    bases: np.ndarray
    n_buckets: int
    _probes: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def choose(cls, bits: int, max_threshold: int, n: int) -> Layout:
        """Pick ``m`` equal substrings minimising the modelled query cost at ``n`` entries."""
        # Memory term: at most n buckets per table, so its offsets never take more memory than
        # its slots. (Without it, PDQ would switch to 12 x 21 bits at ~0.7M entries: no faster
        # in A/B runs, with 100 MB of offsets.)
        cap = min(_MAX_SUBSTRING_BITS, max(8, n.bit_length() - 1))
        words = bits // 64
        splits = [[min(cap, bits // m)] * m for m in range(1, 17 * words)]
        best = min(splits, key=lambda w: _expected_cost(w, max_threshold, n, words))
        return cls.from_widths(words, best)

    @classmethod
    def from_widths(cls, words: int, widths: list[int]) -> Layout:
        """Layout of substrings of ``widths`` (summing to <= ``64 * words``) laid end to end."""
        tables, offset = [], 0
        for s in widths:
            tables.append((s, offset))
            offset += s
        if offset > 64 * words:
            raise ValueError(f"substrings of {offset} bits do not fit {64 * words}-bit codes")
        tables.sort(key=lambda x: -x[0])
        bases, total = [], 0
        for s, _ in tables:
            bases.append(total)
            total += 1 << s
        low_bits = [min(s, 64 - off % 64) for s, off in tables]
        return cls(
            words=words,
            widths=tuple(s for s, _ in tables),
            word_idx=np.array([off // 64 for _, off in tables], dtype=np.intp),
            high_idx=np.array([min(off // 64 + 1, words - 1) for _, off in tables], dtype=np.intp),
            shifts=np.array([off % 64 for _, off in tables], dtype=np.uint64),
            high_shifts=np.array(low_bits, dtype=np.uint64),
            masks=np.array([(1 << s) - 1 for s, _ in tables], dtype=np.uint64),
            high_masks=np.array(
                [
                    ((1 << s) - 1) ^ ((1 << lo) - 1)
                    for (s, _), lo in zip(tables, low_bits, strict=True)
                ],
                dtype=np.uint64,
            ),
            bases=np.array(bases, dtype=np.uint64),
            n_buckets=total,
        )

    def _words(self, codes: np.ndarray, tables: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Low and high 64-bit words of ``tables`` for split ``codes`` (see ``split_codes``)."""
        per_part = codes.shape[2]
        lp, lc = np.divmod(self.word_idx[tables], per_part)
        hp, hc = np.divmod(self.high_idx[tables], per_part)
        return codes[lp, :, lc], codes[hp, :, hc]

    def table_keys(self, codes: np.ndarray, j: int) -> np.ndarray:
        """Bucket numbers within table ``j`` (without its base) of split ``codes``, ``(n,)``."""
        low, high = self._words(codes, j)
        keys: np.ndarray = low >> self.shifts[j]
        keys &= self.masks[j]
        if self.high_masks[j]:
            keys |= (high << self.high_shifts[j]) & self.high_masks[j]
        return keys.astype(np.uint32)

    def keys(self, codes: np.ndarray) -> np.ndarray:
        """Global bucket numbers, shape ``(m, n)``, of split ``codes`` (see ``split_codes``)."""
        low, high = self._words(codes, np.arange(self.m))
        keys: np.ndarray = (low >> self.shifts[:, None]) & self.masks[:, None]
        keys |= (high << self.high_shifts[:, None]) & self.high_masks[:, None]
        keys |= self.bases[:, None]
        return keys.astype(np.intp)

    def probe_buckets(self, q: np.ndarray, t: int) -> np.ndarray:
        """The bucket of every probe for the query words ``q`` ``(words,)`` at threshold ``t``."""
        tables, flips = self.probes(t)
        keys: np.ndarray = ((q[self.word_idx] >> self.shifts) & self.masks) | self.bases
        if self.words > 1:  # 64-bit codes have no straddling substrings
            keys |= (q[self.high_idx] << self.high_shifts) & self.high_masks
        buckets: np.ndarray = keys.view(np.intp).take(tables) ^ flips
        return buckets

    @property
    def m(self) -> int:
        return len(self.widths)

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
