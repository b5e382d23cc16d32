"""A blocklist entry, and the checks one record of any file format goes through.

Columns (DESIGN.md): ``algo,hash,id,list,category,label``; only ``algo`` and
``hash`` are required (``algo`` too may be given with ``--algo`` instead).
Errors never show a hash value: hash lists are confidential and must not reach logs.
"""

import hashlib
import re
import string
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

from streamguard.hashing import ALGORITHMS

COLUMNS = ("algo", "hash", "id", "list", "category", "label")
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

    @property
    def key(self) -> tuple[str, str]:
        return (self.list, self.id)


_SLOT_SETTERS = tuple(Entry.__dict__[field.name].__set__ for field in fields(Entry))


def new_entries(columns: Sequence[Sequence[Any]]) -> list[Entry]:
    """``Entry(*row)`` for each row of ``columns`` (one sequence per field, in field order).

    Fills the slots directly, in C-level loops: the frozen dataclass ``__init__``
    costs six Python-level ``object.__setattr__`` calls per entry.
    """
    entries = list(map(object.__new__, repeat(Entry, len(columns[0]))))
    for set_field, column in zip(_SLOT_SETTERS, columns, strict=True):
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


def derived_ids(algos: Iterable[str], hex_hashes: Iterable[str]) -> list[str]:
    """Ids for entries without one: stable, and they do not disclose the hash in events or logs."""
    sha256 = hashlib.sha256
    return [
        "h" + sha256(f"{algo}:{hex_hash}".encode()).hexdigest()[:16]
        for algo, hex_hash in zip(algos, hex_hashes, strict=True)
    ]


def parse_entry(row: dict[str, str], *, default_algo: str | None, default_list: str) -> Entry:
    """Validate one record (column name -> text); ValueError says what is wrong."""
    raw_algo = row.get("algo") or default_algo or ""
    if not raw_algo.strip():
        raise ValueError("missing algo (give an 'algo' column or --algo)")
    algo = algo_name(raw_algo)
    if algo is None:
        raise ValueError(_unknown_algo(raw_algo))
    spec = ALGORITHMS[algo]
    hex_hash = (row.get("hash") or "").strip().lower()
    if not HEX_DIGITS.issuperset(hex_hash):
        raise ValueError(f"{algo} hash is not hexadecimal")
    if len(hex_hash) != spec.hex_length:
        raise ValueError(f"{algo} hash must be {spec.hex_length} hex digits, got {len(hex_hash)}")
    return Entry(
        algo=algo,
        digest=bytes.fromhex(hex_hash),
        id=(row.get("id") or "").strip() or derived_ids([algo], [hex_hash])[0],
        list=(row.get("list") or "").strip() or default_list,
        category=(row.get("category") or "").strip().lower() or DEFAULT_CATEGORY,
        label=(row.get("label") or "").strip(),
    )
