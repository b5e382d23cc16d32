"""The in-memory blocklist a worker matches against: one index per algo plus entry metadata.

Entries are known by number: the Redis store numbers them (so its change log can
name them), and a file blocklist numbers them in file order. Every entry put is
checked for being degenerate (blocklist/degenerate.py), whatever it came from: files
loaded with degenerate entries allowed, or a Redis store they were imported into.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamguard.blocklist.degenerate import Featureless, Refusal, load_screened
from streamguard.blocklist.entry import Entry
from streamguard.blocklist.index import HammingIndex
from streamguard.blocklist.metadata import ALGO_NAMES, EntryInfo, EntryTable, Rows, algo_code
from streamguard.errors import BlocklistFormatError
from streamguard.hashing import ALGORITHMS


@dataclass(frozen=True, slots=True)
class Hit:
    entry: EntryInfo
    distance: int
    threshold: int


def _unique(numbers: np.ndarray, rows: Rows) -> tuple[np.ndarray, Rows]:
    """Numbers as int64 with each given once: the last row given for a number wins."""
    numbers = np.asarray(numbers, np.int64)
    if len(numbers) != len(rows):
        raise ValueError(f"got {len(numbers)} numbers for {len(rows)} entries")
    _, last_from_end = np.unique(numbers[::-1], return_index=True)
    if len(last_from_end) == len(numbers):
        return numbers, rows
    keep = np.sort(len(numbers) - 1 - last_from_end)
    return numbers[keep], rows.take(keep.tolist())


def _by_algo(
    numbers: np.ndarray, rows: Rows, featureless: Featureless
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Algo -> (numbers, codes as uint8 rows) of the entries with that algo; and whether
    each row is degenerate."""
    algos = np.array(rows.algos)
    grouped = {}
    degenerate = np.zeros(len(rows), bool)
    for name in ALGO_NAMES:
        chosen = np.flatnonzero(algos == name)
        if len(chosen):
            digests = bytes.fromhex("".join([rows.hashes[i] for i in chosen.tolist()]))
            codes = np.frombuffer(digests, np.uint8).reshape(len(chosen), -1)
            grouped[name] = (numbers[chosen], codes)
            degenerate[chosen] = featureless.mask(name, codes)
    return grouped, degenerate


class Blocklist:
    """Matching state; ``put`` and ``drop`` may run while other threads ``search``."""

    def __init__(self, thresholds: Mapping[str, int] | None = None) -> None:
        self.thresholds = {name: spec.default_threshold for name, spec in ALGORITHMS.items()}
        self.thresholds.update(thresholds or {})
        self.featureless = Featureless(self.thresholds)
        self._indexes = {
            name: HammingIndex(spec.bits, self.thresholds[name])
            for name, spec in ALGORITHMS.items()
        }
        self._table = EntryTable()

    @classmethod
    def from_files(
        cls,
        paths: Iterable[Path],
        algo: str | None = None,
        thresholds: Mapping[str, int] | None = None,
        *,
        allow_degenerate: bool = False,
    ) -> tuple["Blocklist", list[Refusal]]:
        """All files parsed before anything is added: one bad file loads nothing.

        An entry whose (list, id) comes again in a later file is replaced by it.
        Degenerate entries are left out, each with its refusal, unless allowed.
        """
        paths = list(paths)
        builder = BlocklistBuilder(thresholds)
        by_key: dict[tuple[str, str], Entry] = {}
        refused: list[Refusal] = []
        for path in paths:
            screened = load_screened(path, builder.featureless, algo=algo, allow=allow_degenerate)
            by_key.update((entry.key, entry) for entry in screened.entries)
            refused += screened.refused
        if not by_key:
            files = ", ".join(str(path) for path in paths)
            raise BlocklistFormatError(
                f"{files}: every entry is degenerate ({len(refused)}; --allow-degenerate "
                "loads them)"
            )
        builder.put(np.arange(len(by_key)), list(by_key.values()))
        return builder.build(), refused

    def put(self, numbers: np.ndarray, entries: Sequence[Entry] | Rows) -> None:
        """Add or replace entries by number; for a number given twice the last entry wins."""
        rows = entries if isinstance(entries, Rows) else Rows.of(entries)
        numbers, rows = _unique(numbers, rows)
        # An entry that changes algo leaves its old index. One that keeps its algo stays:
        # the index's add replaces it by number, without a tombstone.
        new_algos = np.array([algo_code(name) for name in rows.algos], np.uint8)
        self._unindex(numbers[self._table.algos_of(numbers) != new_algos])
        grouped, degenerate = _by_algo(numbers, rows, self.featureless)
        # Metadata first: a search that finds the new code can then always describe it.
        self._table.put(numbers, rows, degenerate)
        for name, (chosen, codes) in grouped.items():
            self._indexes[name].add(chosen, codes)

    def adopt(self, other: "Blocklist") -> None:
        """Take ``other``'s entries in place of these (a full reload).

        Numbers mean the same entry in both, so a search that reads the new table
        with the old index in between still describes what it finds.
        """
        self.thresholds = other.thresholds
        self.featureless = other.featureless
        self._table = other._table
        self._indexes = other._indexes

    def drop(self, numbers: np.ndarray) -> None:
        """Remove entries by number; unknown numbers are ignored."""
        numbers = np.unique(np.asarray(numbers, np.int64))
        self._unindex(numbers)
        self._table.drop(numbers)

    def _unindex(self, numbers: np.ndarray) -> None:
        held = self._table.algos_of(numbers)
        for name in ALGO_NAMES:
            chosen = numbers[held == algo_code(name)]
            if len(chosen):
                self._indexes[name].remove(chosen)

    @property
    def algos(self) -> list[str]:
        """Algorithms with at least one entry: the only hashes worth computing."""
        return [name for name, index in self._indexes.items() if len(index)]

    def counts(self) -> dict[str, int]:
        return {name: len(index) for name, index in self._indexes.items()}

    def degenerate_counts(self) -> dict[str, int]:
        """Degenerate entries held (loaded with them allowed), by algo."""
        return self._table.degenerate_counts()

    def __len__(self) -> int:
        return len(self._table)

    @property
    def nbytes(self) -> int:
        """Bytes held by the indexes and the metadata columns."""
        return self._table.nbytes + sum(index.nbytes for index in self._indexes.values())

    def search(self, algo: str, digest: bytes) -> list[Hit]:
        """Every entry of ``algo`` within its threshold of ``digest``, nearest first."""
        threshold = self.thresholds[algo]
        numbers, distances = self._indexes[algo].search(np.frombuffer(digest, np.uint8), threshold)
        hits = []
        for number, distance in zip(numbers.tolist(), distances.tolist(), strict=True):
            entry = self._table.info(number)
            if entry is not None:  # None: dropped since the index was searched
                hits.append(Hit(entry, int(distance), threshold))
        return hits


class BlocklistBuilder:
    """Collects entries batch by batch and indexes them once at the end.

    Adding a large list to a live ``Blocklist`` batch by batch would merge its
    indexes over and over; a full load goes through here instead.
    """

    def __init__(self, thresholds: Mapping[str, int] | None = None) -> None:
        self._blocklist = Blocklist(thresholds)
        self._batches: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {a: [] for a in ALGO_NAMES}

    def __len__(self) -> int:
        return len(self._blocklist._table)

    @property
    def featureless(self) -> Featureless:
        return self._blocklist.featureless

    def put(self, numbers: np.ndarray, entries: Sequence[Entry] | Rows) -> None:
        rows = entries if isinstance(entries, Rows) else Rows.of(entries)
        numbers, rows = _unique(numbers, rows)
        grouped, degenerate = _by_algo(numbers, rows, self.featureless)
        self._blocklist._table.put(numbers, rows, degenerate)
        for name, batch in grouped.items():
            self._batches[name].append(batch)

    def build(self) -> Blocklist:
        table = self._blocklist._table
        for name, batches in self._batches.items():
            if not batches:
                continue
            numbers = np.concatenate([numbers for numbers, _ in batches])
            codes = np.concatenate([codes for _, codes in batches])
            # A number put twice with different algos belongs to the index of its last algo.
            current = table.algos_of(numbers) == algo_code(name)
            self._blocklist._indexes[name].add(numbers[current], codes[current])
            batches.clear()
        return self._blocklist
