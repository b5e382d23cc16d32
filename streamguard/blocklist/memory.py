"""The in-memory blocklist a worker matches against: entries plus one index per algo."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamguard.blocklist.formats import Entry, load_blocklist_file
from streamguard.blocklist.index import HammingIndex
from streamguard.hashing import ALGORITHMS


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    distance: int
    threshold: int


class Blocklist:
    """Entries keyed by (list, id); adding an existing key replaces it."""

    def __init__(self, thresholds: Mapping[str, int] | None = None) -> None:
        self.thresholds = {name: spec.default_threshold for name, spec in ALGORITHMS.items()}
        self.thresholds.update(thresholds or {})
        self._indexes = {
            name: HammingIndex(spec.bits, self.thresholds[name])
            for name, spec in ALGORITHMS.items()
        }
        self._numbers: dict[tuple[str, str], int] = {}
        self._entries: dict[int, Entry] = {}

    @classmethod
    def from_files(
        cls,
        paths: Iterable[Path],
        algo: str | None = None,
        thresholds: Mapping[str, int] | None = None,
    ) -> "Blocklist":
        """All files parsed before anything is added: one bad file loads nothing."""
        entries = [entry for path in paths for entry in load_blocklist_file(path, algo=algo)]
        blocklist = cls(thresholds)
        blocklist.add(entries)
        return blocklist

    def add(self, entries: Iterable[Entry]) -> None:
        by_algo: dict[str, tuple[list[int], list[bytes]]] = {}
        for entry in entries:
            number = self._numbers.get(entry.key)
            if number is not None and self._entries[number].algo != entry.algo:
                self._indexes[self._entries[number].algo].remove(np.array([number]))
            if number is None:
                number = self._numbers[entry.key] = len(self._numbers)
            self._entries[number] = entry
            ids, digests = by_algo.setdefault(entry.algo, ([], []))
            ids.append(number)
            digests.append(entry.digest)
        for algo, (ids, digests) in by_algo.items():
            codes = np.frombuffer(b"".join(digests), np.uint8).reshape(len(ids), -1)
            self._indexes[algo].add(np.array(ids, np.int64), codes)

    @property
    def algos(self) -> list[str]:
        """Algorithms with at least one entry: the only hashes worth computing."""
        return [name for name, index in self._indexes.items() if len(index)]

    def counts(self) -> dict[str, int]:
        return {name: len(index) for name, index in self._indexes.items()}

    def __len__(self) -> int:
        return sum(self.counts().values())

    def search(self, algo: str, digest: bytes) -> list[Hit]:
        """Every entry of ``algo`` within its threshold of ``digest``, nearest first."""
        threshold = self.thresholds[algo]
        ids, distances = self._indexes[algo].search(np.frombuffer(digest, np.uint8), threshold)
        return [
            Hit(self._entries[number], int(distance), threshold)
            for number, distance in zip(ids.tolist(), distances.tolist(), strict=True)
        ]
