"""What events say about each blocklist entry, held in columns by entry number.

Ten million entries as Python objects would take gigabytes. Here an entry costs
14 bytes plus the UTF-8 text of its id and label; list and category names are
stored once. Lookups only happen for hits, so they may be slow; the lock keeps
a lookup from seeing an entry half-written by the thread that applies changes.
"""

import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamguard.blocklist.entry import Entry
from streamguard.hashing import ALGORITHMS

ALGO_NAMES = tuple(ALGORITHMS)
NO_ENTRY = 0  # algo code of a number without an entry
_MAX_TEXT = 0xFFFF  # id and label are each cut to this many UTF-8 bytes


def algo_code(name: str) -> int:
    return ALGO_NAMES.index(name) + 1


@dataclass(frozen=True, slots=True)
class Rows:
    """Entries as columns: how a full load reads them, without an object per entry."""

    algos: Sequence[str]
    hashes: Sequence[str]  # hex
    lists: Sequence[str]
    ids: Sequence[str]
    categories: Sequence[str]
    labels: Sequence[str]
    videos: Sequence[str] = ()  # empty when no row is a video frame
    times: Sequence[float | None] = ()  # seconds into the video, as ``videos``

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> "Rows":
        videos = [e.video for e in entries]
        return cls(
            [e.algo for e in entries],
            [e.digest.hex() for e in entries],
            [e.list for e in entries],
            [e.id for e in entries],
            [e.category for e in entries],
            [e.label for e in entries],
            *((videos, [e.ts for e in entries]) if any(videos) else ()),
        )

    def __len__(self) -> int:
        return len(self.algos)

    def take(self, positions: Sequence[int]) -> "Rows":
        columns = (self.algos, self.hashes, self.lists, self.ids, self.categories, self.labels)
        frames = (self.videos, self.times) if self.videos else ()
        return Rows(*([column[i] for i in positions] for column in (*columns, *frames)))


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """An entry as matches report it: everything but the hash."""

    algo: str
    id: str
    list: str
    category: str
    label: str
    degenerate: bool = False  # a featureless picture's hash is close (blocklist/degenerate.py)
    video: str = ""  # the known video this entry is a frame of, "" for a picture
    ts: float | None = None  # seconds into ``video``

    @property
    def key(self) -> tuple[str, str]:
        return (self.list, self.id)


class EntryTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._algo = np.zeros(0, np.uint8)
        self._list = np.zeros(0, np.uint16)
        self._category = np.zeros(0, np.uint16)
        self._offset = np.zeros(0, np.uint32)  # widened to int64 past 4 GiB of text
        self._id_len = np.zeros(0, np.uint16)
        self._label_len = np.zeros(0, np.uint16)
        self._degenerate = np.zeros(0, bool)
        self._video = np.zeros(0, np.uint32)  # index into _videos; 0: not a video frame
        self._ts = np.zeros(0, np.float32)  # NaN: no time
        self._degenerate_counts = np.zeros(len(ALGO_NAMES) + 1, np.int64)  # by algo code
        self._text = bytearray()
        self._garbage = 0  # bytes of _text no entry points to any more
        self._names: list[str] = []
        self._codes: dict[str, int] = {}
        self._videos: list[str] = [""]  # video ids are many: their own table, 32-bit codes
        self._video_codes: dict[str, int] = {"": 0}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        columns = (self._algo, self._list, self._category, self._offset, self._degenerate)
        frames = (self._video, self._ts, self._id_len, self._label_len)
        return sum(c.nbytes for c in (*columns, *frames)) + len(self._text)

    def algos_of(self, numbers: np.ndarray) -> np.ndarray:
        """Algo code of each number (``NO_ENTRY`` if it has none)."""
        inside = numbers < len(self._algo)
        codes = np.zeros(len(numbers), np.uint8)
        codes[inside] = self._algo[numbers[inside]]
        return codes

    def degenerate_counts(self) -> dict[str, int]:
        """Degenerate entries held, by algo."""
        return dict(zip(ALGO_NAMES, self._degenerate_counts[1:].tolist(), strict=True))

    def put(self, numbers: np.ndarray, rows: Rows, degenerate: np.ndarray) -> None:
        """Store ``rows`` as ``numbers`` (given once each), replacing what they held;
        ``degenerate`` marks each row."""
        ids = [text.encode()[:_MAX_TEXT] for text in rows.ids]
        labels = [text.encode()[:_MAX_TEXT] for text in rows.labels]
        id_len = np.fromiter(map(len, ids), np.uint16, len(ids))
        label_len = np.fromiter(map(len, labels), np.uint16, len(labels))
        algos = {name: algo_code(name) for name in set(rows.algos)}
        with self._lock:
            self._grow(int(numbers.max(initial=-1)) + 1)
            self._forget(numbers)
            sizes = id_len.astype(np.int64) + label_len
            offsets = len(self._text) + np.cumsum(sizes) - sizes
            self._text += b"".join(itertools.chain.from_iterable(zip(ids, labels, strict=True)))
            if len(self._text) > np.iinfo(self._offset.dtype).max:
                self._offset = self._offset.astype(np.int64)
            self._offset[numbers] = offsets
            self._id_len[numbers] = id_len
            self._label_len[numbers] = label_len
            self._list[numbers] = self._codes_of(rows.lists)
            self._category[numbers] = self._codes_of(rows.categories)
            codes = np.array([algos[name] for name in rows.algos], np.uint8)
            self._algo[numbers] = codes
            self._degenerate[numbers] = degenerate
            self._put_frames(numbers, rows)
            self._degenerate_counts += np.bincount(
                codes[degenerate], minlength=len(self._degenerate_counts)
            )
            self._count += len(numbers)

    def drop(self, numbers: np.ndarray) -> None:
        with self._lock:
            self._forget(numbers[numbers < len(self._algo)])
            if self._garbage > max(len(self._text) // 2, 1 << 20):
                self._compact()

    def info(self, number: int) -> EntryInfo | None:
        """The entry with this number, None if there is none (any more)."""
        with self._lock:
            if number >= len(self._algo) or self._algo[number] == NO_ENTRY:
                return None
            start = int(self._offset[number])
            middle = start + int(self._id_len[number])
            end = middle + int(self._label_len[number])
            return EntryInfo(
                algo=ALGO_NAMES[self._algo[number] - 1],
                id=self._text[start:middle].decode(errors="replace"),
                list=self._names[self._list[number]],
                category=self._names[self._category[number]],
                label=self._text[middle:end].decode(errors="replace"),
                degenerate=bool(self._degenerate[number]),
                video=self._videos[self._video[number]],
                ts=None if np.isnan(ts := self._ts[number]) else float(ts),
            )

    # -- under the lock -------------------------------------------------------------------

    def _put_frames(self, numbers: np.ndarray, rows: Rows) -> None:
        if not rows.videos:
            self._video[numbers] = 0
            self._ts[numbers] = math.nan
            return
        codes = self._video_codes
        for name in set(rows.videos) - codes.keys():
            codes[name] = len(self._videos)
            self._videos.append(name)
        self._video[numbers] = [codes[name] for name in rows.videos]
        self._ts[numbers] = [math.nan if ts is None else ts for ts in rows.times]

    def _codes_of(self, names: Sequence[str]) -> list[int]:
        codes = {name: self._code(name) for name in set(names)}
        return [codes[name] for name in names]

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            if len(self._names) > np.iinfo(np.uint16).max:
                raise ValueError("more than 65,535 distinct list and category names")
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def _grow(self, size: int) -> None:
        if size <= len(self._algo):
            return
        capacity = max(size, 2 * len(self._algo), 1024)
        columns = (
            *("_algo", "_list", "_category", "_offset", "_id_len", "_label_len", "_degenerate"),
            *("_video", "_ts"),
        )
        for name in columns:
            column = getattr(self, name)
            grown = np.zeros(capacity, column.dtype)
            grown[: len(column)] = column
            setattr(self, name, grown)

    def _forget(self, numbers: np.ndarray) -> None:
        held = numbers[self._algo[numbers] != NO_ENTRY]
        marked = held[self._degenerate[held]]
        self._degenerate_counts -= np.bincount(
            self._algo[marked], minlength=len(self._degenerate_counts)
        )
        self._degenerate[marked] = False
        self._garbage += int(self._id_len[held].sum(dtype=np.int64))
        self._garbage += int(self._label_len[held].sum(dtype=np.int64))
        self._algo[held] = NO_ENTRY
        self._count -= len(held)

    def _compact(self) -> None:
        """Rewrite the text without the parts of removed or replaced entries."""
        live = np.flatnonzero(self._algo != NO_ENTRY)
        text = bytearray()
        for number in live.tolist():
            start = int(self._offset[number])
            end = start + int(self._id_len[number]) + int(self._label_len[number])
            self._offset[number] = len(text)
            text += self._text[start:end]
        self._text = text
        self._garbage = 0
