"""Degenerate entries: hashes within threshold of a featureless picture's (hashing/featureless.py).

Black, white, a grey slate, a fade or a gradient on a benign stream would match such an
entry, so a careless list could kill any stream. They are refused where entries come in
(``blocklist import|add``, files loaded by ``scan`` and ``run``), one line naming the
file, line and entry id each, never the hash; ``--allow-degenerate`` (``[blocklist]
allow_degenerate``) loads them, and loaded ones decide nothing on their own: they only
count toward an incident an ordinary entry opened (detect/policy.py). The matcher
applies the same test to frames: a frame's hash this close to a featureless picture's
is not looked up (detect/matcher.py).

"Within threshold" is the algorithm's default threshold, or the configured one if larger:
a larger threshold lets a frame match from farther away, so featureless frames too.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter
from pathlib import Path

import numpy as np

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.formats import entry_lines, load_blocklist_file
from streamguard.hashing import ALGORITHMS
from streamguard.hashing.featureless import featureless_codes

REASON = "degenerate hash (a flat or gradient picture has it)"
_BROADCAST_MAX = 256  # up to this many codes (a frame's): one broadcast comparison
_CHUNK = 1 << 15  # codes compared at a time in larger batches: columns stay in cache
_ALGO, _DIGEST = attrgetter("algo"), attrgetter("digest")


def radius(algo: str, thresholds: Mapping[str, int]) -> int:
    """How close to a featureless picture's hash is degenerate (see the module docstring)."""
    default = ALGORITHMS[algo].default_threshold
    return max(default, thresholds.get(algo, default))


class Featureless:
    """Tells which hashes are within ``radius`` of a featureless picture's."""

    def __init__(self, thresholds: Mapping[str, int] | None = None) -> None:
        self.radii = {name: radius(name, thresholds or {}) for name in ALGORITHMS}

    def mask(self, algo: str, codes: np.ndarray) -> np.ndarray:
        """One bool per row of ``codes`` (uint8, the algo's bytes per row)."""
        words = np.ascontiguousarray(codes).view(np.uint64)
        references = featureless_codes(algo).view(np.uint64)
        limit = self.radii[algo]
        if len(words) <= _BROADCAST_MAX:
            distances = np.bitwise_count(words[:, None, :] ^ references[None, :, :]).sum(axis=2)
            near: np.ndarray = (distances <= limit).any(axis=1)
            return near
        return np.concatenate(
            [
                _near(words[start : start + _CHUNK], references, limit)
                for start in range(0, len(words), _CHUNK)
            ]
        )

    def of(self, algos: Sequence[str], digests: Sequence[bytes]) -> np.ndarray:
        """One bool per hash given as (algo, digest) pairs in two sequences."""
        kinds = set(algos)
        if len(kinds) == 1:  # the usual file: one algo, no selecting
            (algo,) = kinds
            codes = np.frombuffer(b"".join(digests), np.uint8).reshape(len(digests), -1)
            return self.mask(algo, codes)
        found = np.zeros(len(algos), bool)
        names = np.array(algos)
        for algo in kinds:
            chosen = np.flatnonzero(names == algo)
            joined = b"".join([digests[i] for i in chosen.tolist()])
            found[chosen] = self.mask(
                algo, np.frombuffer(joined, np.uint8).reshape(len(chosen), -1)
            )
        return found

    def entries(self, entries: Sequence[Entry]) -> np.ndarray:
        return self.of(list(map(_ALGO, entries)), list(map(_DIGEST, entries)))


def _near(words: np.ndarray, references: np.ndarray, limit: int) -> np.ndarray:
    """``Featureless.mask`` for one chunk. The first 128 bits' distance is a lower bound of
    the whole: one or two words against every reference, the rest only for the rare rows
    within ``limit`` there. About 60 ms per million PDQ hashes."""
    head = min(words.shape[1], 2)
    columns = [np.ascontiguousarray(words[:, w]) for w in range(head)]
    scratch = np.empty(len(words), np.uint64)
    count, total = np.empty(len(words), np.uint8), np.empty(len(words), np.uint8)
    close, candidates = np.empty(len(words), bool), np.zeros(len(words), bool)
    for reference in references:
        np.bitwise_xor(columns[0], reference[0], out=scratch)
        np.bitwise_count(scratch, out=total)
        for w in range(1, head):
            np.bitwise_xor(columns[w], reference[w], out=scratch)
            np.add(total, np.bitwise_count(scratch, out=count), out=total)
        np.logical_or(candidates, np.less_equal(total, limit, out=close), out=candidates)
    if head == words.shape[1]:
        return candidates
    rows = np.flatnonzero(candidates)
    distances = np.bitwise_count(words[rows][:, None, :] ^ references[None, :, :]).sum(axis=2)
    candidates[rows] = (distances <= limit).any(axis=1)
    return candidates


def shown_id(entry: Entry) -> str:
    """The entry id as a refusal line shows it: never (16 hex digits of) the hash, never a
    line break."""
    hex_hash, lowered = entry.digest.hex(), entry.id.lower()
    if any(lowered[start : start + 16] in hex_hash for start in range(len(lowered) - 15)):
        return "<holds the hash, not shown>"
    return entry.id if entry.id.isprintable() else repr(entry.id)[1:-1]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A degenerate entry left out, and where it came from (``FILE: line N``)."""

    where: str
    entry: Entry

    def __str__(self) -> str:
        return (
            f"{self.where}: entry '{shown_id(self.entry)}' ({self.entry.algo}) refused: "
            f"{REASON}; --allow-degenerate loads it"
        )


def degenerate_summary(refused: int, loaded: int) -> str:
    """What a load did with degenerate entries, to end its summary line ('' for nothing)."""
    if refused:
        return f"; {refused} degenerate entries refused (--allow-degenerate loads them)"
    if loaded:
        return f"; {loaded} degenerate entries loaded (they decide nothing on their own)"
    return ""


@dataclass(frozen=True, slots=True)
class Screened:
    """A blocklist file's entries after the degenerate check."""

    entries: list[Entry]  # to load
    refused: list[Refusal]
    degenerate: int  # of ``entries``: loaded because degenerate entries were allowed


def load_screened(
    path: Path, featureless: Featureless, *, algo: str | None = None, allow: bool = False
) -> Screened:
    """``load_blocklist_file`` and the degenerate check. Only a file with entries to refuse
    is read a second time, to name their lines."""
    entries = load_blocklist_file(path, algo=algo)
    flags = featureless.entries(entries)
    if not flags.any() or allow:
        return Screened(entries, [], int(flags.sum()))
    bad = list(compress(entries, flags))
    lines = entry_lines(path, {entry.key for entry in bad}, algo=algo)
    refused = [Refusal(f"{path}: line {lines[entry.key]}", entry) for entry in bad]
    return Screened(list(compress(entries, ~flags)), refused, 0)
