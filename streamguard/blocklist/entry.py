"""A blocklist entry, and the checks one record of any file format goes through.

Columns (DESIGN.md): ``algo,hash,id,list,category,label``, and for a frame of a known
video ``video,ts,quality`` (the video's id, seconds into it, PDQ quality); only ``algo``
and ``hash`` are required (``algo`` too may be given with ``--algo`` instead).
Errors never show a hash value: hash lists are confidential and must not reach logs.
"""

import hashlib
import math
import re
import string
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

from streamguard.hashing import ALGORITHMS
from streamguard.hashing.pdq import MIN_QUALITY

BASE_COLUMNS = ("algo", "hash", "id", "list", "category", "label")
VIDEO_COLUMNS = ("video", "ts", "quality")
COLUMNS = BASE_COLUMNS + VIDEO_COLUMNS
DEFAULT_CATEGORY = "unspecified"
HEX_DIGITS = frozenset(string.hexdigits)
_HEX_RUN = re.compile("[0-9a-fA-F]{16}")
_ALGO_ALIASES = {"hash_pdq": "pdq"}  # ThreatExchange's indicator type for PDQ


@dataclass(frozen=True, slots=True)
class Entry:
    """One blocklisted hash; (list, id) identifies it."""

    algo: str
    digest: bytes
    id: str
    list: str
    category: str
    label: str = ""
    video: str = ""  # the known video this hash is a frame of ("" for a picture)
    ts: float | None = None  # seconds into ``video``
    quality: int | None = None  # the frame's PDQ quality, where the list gives it

    @property
    def key(self) -> tuple[str, str]:
        return (self.list, self.id)

    @property
    def indexed(self) -> bool:
        """Whether it is matched: vPDQ frames of quality below 50 are kept out, as the
        reference matcher does (they are flat, black or blurred)."""
        return self.quality is None or self.quality >= MIN_QUALITY


def columns_of(entries: Iterable[Entry]) -> tuple[str, ...]:
    """The CSV columns that hold ``entries``: the video ones only where one is a frame."""
    return COLUMNS if any(entry.video for entry in entries) else BASE_COLUMNS


def csv_row(entry: Entry, columns: Sequence[str] = COLUMNS) -> list[str]:
    """``entry``'s fields as text, for a CSV file with these ``columns``."""
    text = {
        "algo": entry.algo,
        "hash": entry.digest.hex(),
        "id": entry.id,
        "list": entry.list,
        "category": entry.category,
        "label": entry.label,
        "video": entry.video,
        "ts": "" if entry.ts is None else repr(entry.ts),
        "quality": "" if entry.quality is None else str(entry.quality),
    }
    return [text[name] for name in columns]


_SLOT_SETTERS = tuple(Entry.__dict__[field.name].__set__ for field in fields(Entry))


def new_entries(columns: Sequence[Sequence[Any]]) -> list[Entry]:
    """``Entry(*row)`` for each row of ``columns`` (one sequence per field, in field order;
    trailing fields left out take their defaults).

    Fills the slots directly, in C-level loops: the frozen dataclass ``__init__``
    costs six Python-level ``object.__setattr__`` calls per entry.
    """
    count = len(columns[0])
    entries = list(map(object.__new__, repeat(Entry, count)))
    defaults = [repeat(field.default, count) for field in fields(Entry)[len(columns) :]]
    for set_field, column in zip(_SLOT_SETTERS, [*columns, *defaults], strict=True):
        deque(map(set_field, entries, column), maxlen=0)
    return entries


def algo_name(text: str) -> str | None:
    """The algo ``text`` names (any case, aliases allowed), or None."""
    name = text.strip().lower()
    name = _ALGO_ALIASES.get(name, name)
    return name if name in ALGORITHMS else None


def shown(text: str) -> str:
    """A field value quoted for an error message, unless it may hold a hash: 16 hex
    digits in a row (the shortest hash), alone or run together with other text."""
    if _HEX_RUN.search(text):
        return "<hex, not shown: columns swapped?>"
    return f"'{text[:20]}'"


def _unknown_algo(text: str) -> str:
    return f"unknown algo {shown(text.strip().lower())} (expected one of: {', '.join(ALGORITHMS)})"


def derived_ids(
    algos: Iterable[str], hex_hashes: Iterable[str], frames: Iterable[str] | None = None
) -> list[str]:
    """Ids for entries without one: stable, and they do not disclose the hash in events or logs.

    A frame of a known video (``frames``: ``video_frame`` of each, "" for a picture) gets
    its own id even where the video shows the same picture twice.
    """
    sha256 = hashlib.sha256
    return [
        "h" + sha256(f"{algo}:{hex_hash}{frame}".encode()).hexdigest()[:16]
        for algo, hex_hash, frame in zip(
            algos, hex_hashes, repeat("") if frames is None else frames, strict=False
        )
    ]


def video_frame(video: str, ts: float | None) -> str:
    """What makes a video frame's derived id its own: "" for a picture."""
    return f":{video}@{ts}" if video else ""


def parse_ts(text: str) -> float | None:
    """Seconds into a video (None if empty); ValueError if not a finite number ≥ 0."""
    if not (text := text.strip()):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"ts {shown(text)} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"ts {shown(text)} must be a finite number of seconds ≥ 0")
    return value


def parse_quality(text: str) -> int | None:
    """A PDQ quality (None if empty); ValueError if not a whole number 0..100."""
    if not (text := text.strip()):
        return None
    if not text.isascii() or not text.isdigit() or int(text) > 100:
        raise ValueError(f"quality {shown(text)} must be a whole number from 0 to 100")
    return int(text)


def parse_hash(raw_algo: str, raw_hash: str) -> tuple[str, bytes]:
    """An algorithm's name and a hash of it in hex, as the algorithm and the digest;
    ValueError says what is wrong, without the hash."""
    algo = algo_name(raw_algo)
    if algo is None:
        raise ValueError(_unknown_algo(raw_algo))
    spec = ALGORITHMS[algo]
    hex_hash = raw_hash.strip().lower()
    if not HEX_DIGITS.issuperset(hex_hash):
        raise ValueError(f"{algo} hash is not hexadecimal")
    if len(hex_hash) != spec.hex_length:
        raise ValueError(f"{algo} hash must be {spec.hex_length} hex digits, got {len(hex_hash)}")
    return algo, bytes.fromhex(hex_hash)


def parse_entry(row: dict[str, str], *, default_algo: str | None, default_list: str) -> Entry:
    """Validate one record (column name -> text); ValueError says what is wrong."""
    raw_algo = row.get("algo") or default_algo or ""
    if not raw_algo.strip():
        raise ValueError("missing algo (give an 'algo' column or --algo)")
    algo, digest = parse_hash(raw_algo, row.get("hash") or "")
    video = (row.get("video") or "").strip()
    ts = parse_ts(row.get("ts") or "")
    if ts is not None and not video:
        raise ValueError("ts given without a video")
    frame = video_frame(video, ts)
    return Entry(
        algo=algo,
        digest=digest,
        id=(row.get("id") or "").strip() or derived_ids([algo], [digest.hex()], [frame])[0],
        list=(row.get("list") or "").strip() or default_list,
        category=(row.get("category") or "").strip().lower() or DEFAULT_CATEGORY,
        label=(row.get("label") or "").strip(),
        video=video,
        ts=ts,
        quality=parse_quality(row.get("quality") or ""),
    )
