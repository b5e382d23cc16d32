"""Blocklist files: CSV/TSV with a header, JSON lines, or one hex hash per line.

Columns (DESIGN.md): ``algo,hash,id,list,category,label``; only ``algo`` and
``hash`` are required (``algo`` too may be given with ``--algo`` instead).
Errors name the file, the line and the problem, never the hash value: hash
lists are confidential and must not reach logs.
"""

import csv
import hashlib
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamguard.errors import BlocklistFormatError
from streamguard.hashing import ALGORITHMS

COLUMNS = ("algo", "hash", "id", "list", "category", "label")
DEFAULT_CATEGORY = "unspecified"
_HEX_DIGITS = frozenset(string.hexdigits)


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


class _LineError(Exception):
    """A problem with one line; the loader adds the file name."""

    def __init__(self, number: int, problem: str) -> None:
        super().__init__(f"line {number}: {problem}")


def parse_entry(row: dict[str, str], *, default_algo: str | None, default_list: str) -> Entry:
    """Validate one record (column name -> text); ValueError says what is wrong."""
    algo = (row.get("algo") or default_algo or "").strip().lower()
    if not algo:
        raise ValueError("missing algo (give an 'algo' column or --algo)")
    spec = ALGORITHMS.get(algo)
    if spec is None:
        raise ValueError(f"unknown algo '{algo[:20]}' (expected one of: {', '.join(ALGORITHMS)})")
    hex_hash = (row.get("hash") or "").strip().lower()
    if not _HEX_DIGITS.issuperset(hex_hash):
        raise ValueError(f"{algo} hash is not hexadecimal")
    if len(hex_hash) != spec.hex_length:
        raise ValueError(f"{algo} hash must be {spec.hex_length} hex digits, got {len(hex_hash)}")
    entry_id = (row.get("id") or "").strip()
    if not entry_id:
        # Stable, and does not disclose the hash in events or logs.
        entry_id = "h" + hashlib.sha256(f"{algo}:{hex_hash}".encode()).hexdigest()[:16]
    return Entry(
        algo=algo,
        digest=bytes.fromhex(hex_hash),
        id=entry_id,
        list=(row.get("list") or "").strip() or default_list,
        category=(row.get("category") or "").strip().lower() or DEFAULT_CATEGORY,
        label=(row.get("label") or "").strip(),
    )


def _records(lines: list[str], algo: str | None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record) for every data line, whichever of the three formats."""
    numbered = [
        (number, line)
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        return
    first = numbered[0][1].strip()
    if first.startswith("{"):
        for number, line in numbered:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _LineError(number, f"not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise _LineError(number, "expected a JSON object")
            yield number, {str(k): "" if v is None else str(v) for k, v in record.items()}
    elif algo is not None and _HEX_DIGITS.issuperset(first):
        for number, line in numbered:
            yield number, {"hash": line.strip()}
    else:
        delimiter = "\t" if "\t" in first else ","
        current = [0]  # line number of the line the reader last consumed

        def data_lines() -> Iterator[str]:
            for current[0], line in numbered:
                yield line

        reader = csv.reader(data_lines(), delimiter=delimiter)
        header = [name.strip().lower() for name in next(reader)]
        required = {"hash"} if algo else {"algo", "hash"}
        if missing := required - set(header):
            raise _LineError(
                numbered[0][0],
                f"header lacks column(s) {', '.join(sorted(missing))} "
                f"(expected {','.join(COLUMNS)}; for bare hashes pass --algo)",
            )
        for fields in reader:
            if len(fields) != len(header):
                raise _LineError(current[0], f"{len(fields)} fields, header has {len(header)}")
            yield current[0], dict(zip(header, fields, strict=True))


def load_blocklist_file(path: str | Path, *, algo: str | None = None) -> list[Entry]:
    """Parse a whole file; any bad line raises and nothing is returned."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise BlocklistFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BlocklistFormatError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    entries: dict[tuple[str, str], tuple[int, Entry]] = {}
    default_list = path.stem
    try:
        for number, record in _records(lines, algo):
            try:
                entry = parse_entry(record, default_algo=algo, default_list=default_list)
            except ValueError as exc:
                raise _LineError(number, str(exc)) from None
            if entry.key in entries:
                first = entries[entry.key][0]
                raise _LineError(number, f"duplicate id '{entry.id}' (first on line {first})")
            entries[entry.key] = (number, entry)
    except _LineError as exc:
        raise BlocklistFormatError(f"{path}: {exc}") from None
    if not entries:
        raise BlocklistFormatError(f"{path}: no entries")
    return [entry for _, entry in entries.values()]
