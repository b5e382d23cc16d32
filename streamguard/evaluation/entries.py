"""The evaluation's entries, as ``blocklist add-image`` makes them, held twice: as code
matrices for the brute-force distances, which give whole distributions and not only the
matches within threshold, and as each method's blocklist for the production matcher."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist, BlocklistBuilder
from streamguard.blocklist.variants import VARIANT_MARK, entry_id, image_hashes
from streamguard.evaluation.corpus import Picture
from streamguard.evaluation.methods import ALGOS, Method
from streamguard.hashing import ALGORITHMS
from streamguard.hashing.picture import load_picture

NO_HASH = 9999  # distance when a frame has no hash looked up (detect/matcher.py)
LIST_NAME, CATEGORY = "eval", "eval"


@dataclass(slots=True)
class EntrySet:
    """The entries of one algorithm, hash-only or from images, as a code matrix."""

    entries: list[Entry]
    codes: np.ndarray  # (M, bytes) uint8
    owners: np.ndarray  # (M,) picture number


def picture_entries(picture: Picture, algo: str, variants: bool) -> list[Entry]:
    """The entries ``blocklist add-image [--variants]`` makes of a picture for ``algo``."""
    loaded = load_picture(picture.path)
    return [
        Entry(
            algo,
            frame_hash.digest,
            entry_id(picture.name, algo, suffix),
            LIST_NAME,
            CATEGORY,
            picture.name,
        )
        for suffix, frame_hash, problem in image_hashes(loaded, [algo], variants=variants)
        if problem is None
    ]


def entry_sets(pictures: Sequence[Picture]) -> dict[tuple[str, bool], EntrySet]:
    """Every algorithm's entries, hash-only and from images, keyed ``(algo, variants)``."""
    sets = {}
    for algo in ALGOS:
        for variants in (False, True):
            entries, owners = [], []
            for number, picture in enumerate(pictures):
                made = picture_entries(picture, algo, variants)
                entries += made
                owners += [number] * len(made)
            codes = np.frombuffer(b"".join(e.digest for e in entries), np.uint8)
            codes = codes.reshape(len(entries), ALGORITHMS[algo].bits // 8)
            sets[(algo, variants)] = EntrySet(entries, codes, np.array(owners, np.int64))
    return sets


def method_blocklist(
    method: Method, sets: Mapping[tuple[str, bool], EntrySet], thresholds: Mapping[str, int]
) -> Blocklist:
    entries = [e for p in method.probes for e in sets[(p.algo, p.variants)].entries]
    builder = BlocklistBuilder(thresholds)
    builder.put(np.arange(len(entries)), entries)
    return builder.build()


def owner_of(entry_id: str, names: Mapping[str, int]) -> int:
    """The picture an entry id (``NAME-ALGO[~VARIANT]``) was made from."""
    return names[entry_id.split(VARIANT_MARK)[0].rsplit("-", 1)[0]]


def min_distances(
    frame_codes: np.ndarray, entries: EntrySet, owners: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per picture: the least Hamming distance between any of the frame's codes and any
    of the picture's entries (NO_HASH if either has none), and which frame code and which
    entry gave it (-1 for none)."""
    best = np.full(owners, NO_HASH, np.int32)
    which = np.full(owners, -1, np.int32)
    entry = np.full(owners, -1, np.int32)
    if len(frame_codes) == 0 or len(entries.codes) == 0:
        return best, which, entry
    pairs = np.bitwise_count(frame_codes[:, None, :] ^ entries.codes[None, :, :])
    distances = pairs.sum(axis=2, dtype=np.int32)  # (frame codes, entries)
    per_entry, per_entry_code = distances.min(axis=0), distances.argmin(axis=0)
    order = np.lexsort((per_entry, entries.owners))  # by owner, nearest first
    first = np.unique(entries.owners[order], return_index=True)[1]
    chosen = order[first]
    best[entries.owners[chosen]] = per_entry[chosen]
    which[entries.owners[chosen]] = per_entry_code[chosen]
    entry[entries.owners[chosen]] = chosen
    return best, which, entry
