"""Blocklist files: streamguard CSV/TSV, JSON lines, bare hex, and hash-sharing exports.

Columns (DESIGN.md): ``algo,hash,id,list,category,label``; only ``algo`` and
``hash`` are required (``algo`` too may be given with ``--algo`` instead).
ThreatExchange and HMA exports are recognised by their header or line shape
and mapped onto the same columns (docs/blocklist-formats.md).
Errors name the file, the line and the problem, never the hash value: hash
lists are confidential and must not reach logs.

Files are read in chunks. A chunk is first parsed column by column with plain
string operations; a chunk that is unusual (quotes, indented lines) or wrong
goes through the line-by-line parser, which has the same results and names the
first bad line.
"""

import csv
import gc
import hashlib
import json
import re
import string
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from itertools import chain, compress, repeat
from operator import attrgetter
from pathlib import Path
from typing import TextIO

from streamguard.errors import BlocklistFormatError
from streamguard.hashing import ALGORITHMS

COLUMNS = ("algo", "hash", "id", "list", "category", "label")
DEFAULT_CATEGORY = "unspecified"
_HEX_DIGITS = frozenset(string.hexdigits)
_HEX_RUN = re.compile("[0-9a-fA-F]{16}")
_ALGO_ALIASES = {"hash_pdq": "pdq"}  # ThreatExchange's indicator type for PDQ
_CHUNK_CHARS = 1 << 17
_VERDICT = "verdict"  # a ThreatExchange opinion column: rows with a negative one are skipped


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


_LIST, _ID, _KEY = attrgetter("list"), attrgetter("id"), attrgetter("list", "id")
_SLOT_SETTERS = tuple(Entry.__dict__[field.name].__set__ for field in fields(Entry))


def _new_entries(columns: Sequence[Sequence]) -> list[Entry]:
    """``Entry(*row)`` for each row of ``columns`` (one sequence per field, in field order).

    Fills the slots directly, in C-level loops: the frozen dataclass ``__init__``
    costs six Python-level ``object.__setattr__`` calls per entry.
    """
    entries = list(map(object.__new__, repeat(Entry, len(columns[0]))))
    for set_field, column in zip(_SLOT_SETTERS, columns, strict=True):
        deque(map(set_field, entries, column), maxlen=0)
    return entries


class _LineError(Exception):
    """A problem with one line; the loader adds the file name."""

    def __init__(self, number: int, problem: str) -> None:
        super().__init__(f"line {number}: {problem}")


class _Duplicate(Exception):
    """A (list, id) came twice; the line-numbered parser says where."""


@dataclass(frozen=True, slots=True)
class _Shape:
    """A kind of CSV file known by its header: its column names, mapped onto ours."""

    names: Mapping[str, str]
    verdicts: Mapping[str, bool]  # verdict -> keep the row


_STREAMGUARD = _Shape({name: name for name in COLUMNS}, {})
_TE_DATASET = _Shape(  # python-threatexchange: threatexchange dataset -P --csv
    {
        "collab": "list",
        "signal_type": "algo",
        "signal_str": "hash",
        "category": _VERDICT,
        "tags": "label",
    },
    {
        **dict.fromkeys(("POSITIVE_CLASS", "INVESTIGATION_SEED", "DISPUTED"), True),
        **dict.fromkeys(("TRUE_POSITIVE", "WORTH_INVESTIGATING"), True),  # older releases
        **dict.fromkeys(("NEGATIVE_CLASS", "FALSE_POSITIVE"), False),
    },
)
_TE_UI = _Shape(  # ThreatExchange UI: descriptors bulk upload and download
    {
        "td_indicator_type": "algo",
        "td_raw_indicator": "hash",
        "td_status": _VERDICT,
        "td_subjective_tags": "label",
    },
    {"MALICIOUS": True, "SUSPICIOUS": True, "NON_MALICIOUS": False, "UNKNOWN": False},
)
_HEADER_SHAPES = {
    ("signal_type", "signal_str"): _TE_DATASET,
    ("td_indicator_type", "td_raw_indicator"): _TE_UI,
}


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the fields of a data line go."""

    delimiter: str | None  # None: the whole line is the hash
    width: int  # fields per line
    positions: Mapping[str, int]  # COLUMNS name or _VERDICT -> field index
    algo: str | None  # for lines without an algo field
    verdicts: Mapping[str, bool]
    header: bool  # the width comes from a header line


def _algo_name(text: str) -> str | None:
    """The algo ``text`` names (any case, aliases allowed), or None."""
    name = text.strip().lower()
    name = _ALGO_ALIASES.get(name, name)
    return name if name in ALGORITHMS else None


def _shown(text: str) -> str:
    """A field value quoted for an error message, unless it may hold a hash: 16 hex
    digits in a row (the shortest hash), alone or run together with other text."""
    if _HEX_RUN.search(text):
        return "<hex, not shown: columns swapped?>"
    return f"'{text[:20]}'"


def _unknown_algo(text: str) -> str:
    return f"unknown algo {_shown(text.strip().lower())} (expected one of: {', '.join(ALGORITHMS)})"


def _derived_ids(algos: Iterable[str], hex_hashes: Iterable[str]) -> list[str]:
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
    algo = _algo_name(raw_algo)
    if algo is None:
        raise ValueError(_unknown_algo(raw_algo))
    spec = ALGORITHMS[algo]
    hex_hash = (row.get("hash") or "").strip().lower()
    if not _HEX_DIGITS.issuperset(hex_hash):
        raise ValueError(f"{algo} hash is not hexadecimal")
    if len(hex_hash) != spec.hex_length:
        raise ValueError(f"{algo} hash must be {spec.hex_length} hex digits, got {len(hex_hash)}")
    return Entry(
        algo=algo,
        digest=bytes.fromhex(hex_hash),
        id=(row.get("id") or "").strip() or _derived_ids([algo], [hex_hash])[0],
        list=(row.get("list") or "").strip() or default_list,
        category=(row.get("category") or "").strip().lower() or DEFAULT_CATEGORY,
        label=(row.get("label") or "").strip(),
    )


def _is_hex(text: str, length: int) -> bool:
    """Whether ``text`` is ``length`` hex digits."""
    return len(text) == length and _HEX_DIGITS.issuperset(text)


def _is_typed_line(line: str) -> bool:
    """python-threatexchange's file exchange: ``signal_type signal``."""
    words = line.split(" ")
    return (
        len(words) == 2
        and "," not in line
        and "\t" not in line
        and _HEX_DIGITS.issuperset(words[1])
    )


def _is_hma_line(line: str) -> bool:
    """HMA's PDQ data file: ``hash,id,timestamp,tags``, no header."""
    parts = line.split(",")
    return len(parts) == 4 and _is_hex(parts[0], 64) and parts[1].isascii() and parts[1].isdigit()


def _layout(first: str, number: int, algo: str | None) -> _Layout | None:
    """How to read a file whose first data line is ``first``; None for JSON lines."""
    stripped = first.strip()
    if stripped.startswith("{"):
        return None
    if algo is not None and _HEX_DIGITS.issuperset(stripped):
        return _Layout(None, 1, {"hash": 0}, algo, {}, header=False)
    if _is_typed_line(stripped):
        return _Layout(" ", 2, {"algo": 0, "hash": 1}, algo, {}, header=False)
    if algo in (None, "pdq") and _is_hma_line(stripped):
        return _Layout(",", 4, {"hash": 0, "id": 1, "label": 3}, "pdq", {}, header=False)
    return _header_layout(first, number, algo)


def _header_layout(first: str, number: int, algo: str | None) -> _Layout:
    """The layout a header line gives; _LineError if it lacks a needed column."""
    delimiter = "\t" if "\t" in first else ","
    header = [name.strip().lower() for name in next(csv.reader([first], delimiter=delimiter))]
    shape = next(
        (shape for names, shape in _HEADER_SHAPES.items() if set(names) <= set(header)),
        _STREAMGUARD,
    )
    positions = {shape.names[name]: i for i, name in enumerate(header) if name in shape.names}
    if missing := ({"hash"} if algo else {"algo", "hash"}) - set(positions):
        raise _LineError(
            number,
            f"header lacks column(s) {', '.join(sorted(missing))} "
            f"(expected {','.join(COLUMNS)}; for bare hashes pass --algo)",
        )
    return _Layout(delimiter, len(header), positions, algo, shape.verdicts, header=True)


def _chunks(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, lines) in blocks of about ``_CHUNK_CHARS`` characters."""
    number, rest = 1, ""
    while block := stream.read(_CHUNK_CHARS):
        lines = (rest + block).split("\n")
        rest = lines.pop()
        if lines:
            yield number, lines
            number += len(lines)
    if rest:
        yield number, [rest]


def _from_first_data_line(
    chunks: Iterator[tuple[int, list[str]]],
) -> Iterator[tuple[int, list[str]]]:
    """The chunks, the first one cut to start at the first data line; none if there is none."""
    for number, lines in chunks:
        start = next((i for i, line in enumerate(lines) if _is_data(line)), None)
        if start is not None:
            yield number + start, lines[start:]
            yield from chunks
            return


def _is_data(line: str) -> bool:
    """Not blank, not a ``#`` comment."""
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _normalized(values: Sequence[str], normalize: Callable[[str], str]) -> list[str]:
    """``normalize`` of each value, worked out once per distinct value and shared."""
    if values and values.count(values[0]) == len(values):
        return [normalize(values[0])] * len(values)
    table = {value: normalize(value) for value in set(values)}
    return list(map(table.__getitem__, values))


class _Parser:
    """Turns the data lines of one file into entries, chunk by chunk."""

    def __init__(self, layout: _Layout, default_list: str) -> None:
        self.layout = layout
        self.default_list = default_list

    def fast(self, lines: list[str]) -> list[Entry] | None:
        """Entries of a chunk, parsed by columns; None if it needs ``exact``."""
        if list(map(str.lstrip, lines)) != lines:
            return None  # indented or blank-looking lines: only ``exact`` knows them
        text = "\n".join(lines)
        if "" in lines or text.startswith("#") or "\n#" in text:
            lines = [line for line in lines if line and not line.startswith("#")]
            text = "\n".join(lines)
        if not lines:
            return []
        columns = self._split(lines, text)
        return None if columns is None else self._entries(columns, len(lines))

    def _split(self, lines: list[str], text: str) -> dict[str, Sequence[str]] | None:
        """Column name -> the fields of ``lines`` (``text`` joins them); None if unusual."""
        layout = self.layout
        delimiter, width = layout.delimiter, layout.width
        if delimiter is None:
            return {"hash": lines}
        if '"' in text and delimiter != " ":
            rows = list(csv.reader(lines, delimiter=delimiter))
            if len(rows) != len(lines) or set(map(len, rows)) - {width}:
                return None  # a quoted field across lines, or a wrong field count
            table = list(zip(*rows, strict=True))
            return {name: table[i] for name, i in layout.positions.items()}
        counts = list(map(str.count, lines, repeat(delimiter)))
        if counts.count(width - 1) != len(counts):
            return None
        flat = text.replace("\n", delimiter).split(delimiter)
        return {name: flat[i::width] for name, i in layout.positions.items()}

    def _entries(self, columns: dict[str, Sequence[str]], count: int) -> list[Entry] | None:
        """Entries from columns of text, or None if any row is invalid."""
        if _VERDICT in columns:
            columns = self._judged(columns)
            if columns is None:
                return None
            count = len(columns["label"])
        algos = self._algos(columns, count)
        digests = None if algos is None else _digests(columns["hash"], algos)
        if algos is None or digests is None:
            return None
        return _new_entries(
            (
                algos,
                digests,
                self._ids(columns, algos, digests),
                self._column(
                    columns, "list", count, lambda text: text.strip() or self.default_list
                ),
                self._column(columns, "category", count, _category),
                list(map(str.strip, columns["label"])) if "label" in columns else [""] * count,
            )
        )

    def _judged(self, columns: dict[str, Sequence[str]]) -> dict[str, Sequence[str]] | None:
        """Rows without a negative verdict, the verdict put before the label; None if unknown."""
        known = self.layout.verdicts
        verdicts = _normalized(columns.pop(_VERDICT), lambda text: text.strip().upper())
        if any(verdict not in known for verdict in set(verdicts) - {""}):
            return None
        keep = list(map(known.get, verdicts, repeat(True)))
        if not all(keep):
            columns = {name: list(compress(column, keep)) for name, column in columns.items()}
            verdicts = list(compress(verdicts, keep))
        labels = columns.get("label", [""] * len(verdicts))
        if len(kinds := set(verdicts)) == 1:  # the usual case: one verdict, repeated tags
            verdict = kinds.pop()
            columns["label"] = _normalized(labels, lambda tags: _labelled(verdict, tags))
        else:
            columns["label"] = list(map(_labelled, verdicts, labels))
        return columns

    def _algos(self, columns: dict[str, Sequence[str]], count: int) -> list[str] | None:
        """The algo of each row, or None if one is missing or unknown."""
        if "algo" in columns:
            default = self.layout.algo or ""
            names = {text: _algo_name(text or default) for text in set(columns["algo"])}
            if None in names.values():
                return None
            return list(map(names.__getitem__, columns["algo"]))
        name = _algo_name(self.layout.algo or "")
        return None if name is None else [name] * count

    def _column(
        self,
        columns: dict[str, Sequence[str]],
        name: str,
        count: int,
        normalize: Callable[[str], str],
    ) -> list[str]:
        """Column ``name`` normalised, or its default for every row if the file has none."""
        if name in columns:
            return _normalized(columns[name], normalize)
        return [normalize("")] * count

    @staticmethod
    def _ids(
        columns: dict[str, Sequence[str]], algos: list[str], digests: list[bytes]
    ) -> list[str]:
        """The id of each row, derived from its hash where there is none."""
        if "id" not in columns:
            return _derived_ids(algos, map(bytes.hex, digests))
        ids = list(map(str.strip, columns["id"]))
        if "" in ids:
            missing = [not entry_id for entry_id in ids]
            derived = iter(
                _derived_ids(compress(algos, missing), map(bytes.hex, compress(digests, missing)))
            )
            ids = [entry_id or next(derived) for entry_id in ids]
        return ids

    def exact(
        self, number: int, lines: list[str]
    ) -> tuple[list[tuple[int, Entry]], _LineError | None]:
        """(line number, entry) for the lines before the first bad one, and its error if any."""
        found = []
        for line_number, line in enumerate(lines, start=number):
            if not _is_data(line):
                continue
            try:
                entry = self.entry(line)
            except ValueError as exc:
                return found, _LineError(line_number, str(exc))
            if entry is not None:
                found.append((line_number, entry))
        return found, None

    def entry(self, line: str) -> Entry | None:
        """The entry of one data line (None if its verdict says to skip it)."""
        layout = self.layout
        if layout.delimiter is None:
            record = {"hash": line}
        else:
            if layout.delimiter == " ":
                values = line.split()
            else:
                values = next(csv.reader([line], delimiter=layout.delimiter))
            if len(values) != layout.width:
                expected = "header has" if layout.header else "expected"
                raise ValueError(f"{len(values)} fields, {expected} {layout.width}")
            record = {name: values[i] for name, i in layout.positions.items()}
        if _VERDICT in record:
            verdict = record.pop(_VERDICT).strip().upper()
            if verdict and verdict not in layout.verdicts:
                raise ValueError(f"unknown ThreatExchange verdict {_shown(verdict)}")
            if not layout.verdicts.get(verdict, True):
                return None
            record["label"] = _labelled(verdict, record.get("label", ""))
        return parse_entry(record, default_algo=layout.algo, default_list=self.default_list)


def _labelled(verdict: str, tags: str) -> str:
    """The label of a ThreatExchange row: its verdict, then its tags."""
    return " ".join(filter(None, (verdict, tags.strip())))


def _category(text: str) -> str:
    """A category as stored: lower case, the default if empty."""
    return text.strip().lower() or DEFAULT_CATEGORY


def _digests(hashes: Sequence[str], algos: list[str]) -> list[bytes] | None:
    """The bytes of each hex hash, or None if any is not hex of its algo's length."""
    hexes = list(map(str.strip, hashes))
    lengths = {algo: ALGORITHMS[algo].hex_length for algo in set(algos)}
    if len(lengths) == 1:
        if set(map(len, hexes)) - set(lengths.values()):
            return None
    elif list(map(len, hexes)) != list(map(lengths.__getitem__, algos)):
        return None
    try:
        digests = list(map(bytes.fromhex, hexes))
    except ValueError:
        return None
    # fromhex skips whitespace between digit pairs: then there are fewer bytes.
    return digests if 2 * sum(map(len, digests)) == sum(map(len, hexes)) else None


def _json_entry(line: str, default_algo: str | None, default_list: str) -> Entry:
    """The entry of one JSON line; ValueError says what is wrong."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError):  # a number of over 4300 digits, too deep a nesting
        raise ValueError("not valid JSON (a number too long or nesting too deep)") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    row = {str(k): "" if v is None else str(v) for k, v in record.items()}
    return parse_entry(row, default_algo=default_algo, default_list=default_list)


class _Keys:
    """The (list, id) pairs seen so far, as one set of ids per list."""

    def __init__(self) -> None:
        self._ids: dict[str, set[str]] = {}

    def add(self, lists: Sequence[str], ids: Sequence[str]) -> None:
        """Raises _Duplicate if a pair was seen before or comes twice."""
        if len(names := set(lists)) == 1:
            seen = self._ids.setdefault(names.pop(), set())
            before = len(seen)
            seen.update(ids)
            if len(seen) - before != len(ids):
                raise _Duplicate
            return
        for name, entry_id in zip(lists, ids, strict=True):
            seen = self._ids.setdefault(name, set())
            if entry_id in seen:
                raise _Duplicate
            seen.add(entry_id)


def _data_chunks(
    stream: TextIO, algo: str | None, default_list: str
) -> tuple["_Parser | None", Iterator[tuple[int, list[str]]]]:
    """The parser for the file's layout (None for JSON lines) and its chunks of data lines,
    the header left out."""
    chunks = _from_first_data_line(_chunks(stream))
    first = next(chunks, None)
    if first is None:
        return None, iter(())
    number, lines = first
    layout = _layout(lines[0], number, algo)
    if layout is None:
        return None, chain([first], chunks)
    if layout.header:
        first = (number + 1, lines[1:])
    return _Parser(layout, default_list), chain([first], chunks)


class _Load:
    """One pass over a file: fast (duplicates only detected) or exact (every line numbered)."""

    def __init__(self, path: Path, algo: str | None, *, fast: bool) -> None:
        self.path, self.algo, self.fast = path, algo, fast
        self.entries: list[Entry] = []
        self.keys = _Keys()
        self.lines: dict[tuple[str, str], int] = {}  # exact: key -> line number

    def run(self) -> list[Entry]:
        with self.path.open(encoding="utf-8-sig") as stream:
            parser, chunks = _data_chunks(stream, self.algo, self.path.stem)
            for number, lines in chunks:
                if parser is None:
                    self._json(number, lines)
                else:
                    self._chunk(parser, number, lines)
        return self.entries

    def lines_of(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The line of each entry whose (list, id) is in ``keys``. The file is read again;
        only blocks that hold one of them are parsed line by line."""
        found: dict[tuple[str, str], int] = {}
        with self.path.open(encoding="utf-8-sig") as stream:
            parser, chunks = _data_chunks(stream, self.algo, self.path.stem)
            for number, lines in chunks:
                if parser is None:
                    numbered = self._json_entries(number, lines)
                else:
                    entries = parser.fast(lines)
                    if entries is not None and keys.isdisjoint(map(_KEY, entries)):
                        continue
                    numbered, _ = parser.exact(number, lines)
                found.update((entry.key, n) for n, entry in numbered if entry.key in keys)
        return found

    def _chunk(self, parser: _Parser, number: int, lines: list[str]) -> None:
        entries = parser.fast(lines) if self.fast and lines else None
        if entries is not None:
            self._add(entries)
            return
        found, error = parser.exact(number, lines)
        self._add([entry for _, entry in found], [n for n, _ in found])
        if error is not None:
            raise error

    def _json(self, number: int, lines: list[str]) -> None:
        for line_number, entry in self._json_entries(number, lines):
            self._add([entry], [line_number])

    def _json_entries(self, number: int, lines: list[str]) -> list[tuple[int, Entry]]:
        """(line number, entry) of each data line of a JSON lines chunk."""
        found = []
        for line_number, line in enumerate(lines, start=number):
            if not _is_data(line):
                continue
            try:
                found.append((line_number, _json_entry(line, self.algo, self.path.stem)))
            except ValueError as exc:
                raise _LineError(line_number, str(exc)) from None
        return found

    def _add(self, entries: list[Entry], numbers: list[int] | None = None) -> None:
        if self.fast:
            self.keys.add(list(map(_LIST, entries)), list(map(_ID, entries)))
        else:
            for number, entry in zip(numbers, entries, strict=True):
                if (first := self.lines.setdefault(entry.key, number)) != number:
                    raise _LineError(number, f"duplicate id '{entry.id}' (first on line {first})")
        self.entries += entries


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: it would re-scan every entry made so far."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Failures to read or parse ``path`` as one-line BlocklistFormatErrors."""
    try:
        yield
    except FileNotFoundError:
        raise BlocklistFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BlocklistFormatError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except _LineError as exc:
        raise BlocklistFormatError(f"{path}: {exc}") from None


def load_blocklist_file(path: str | Path, *, algo: str | None = None) -> list[Entry]:
    """Parse a whole file; any bad line raises and nothing is returned."""
    path = Path(path)
    with _reading(path), _gc_paused():
        try:
            entries = _Load(path, algo, fast=True).run()
        except _Duplicate:
            entries = _Load(path, algo, fast=False).run()
    if not entries:
        raise BlocklistFormatError(f"{path}: no entries")
    return entries


def entry_lines(
    path: str | Path, keys: set[tuple[str, str]], *, algo: str | None = None
) -> dict[tuple[str, str], int]:
    """The line number of each entry of ``path`` (loaded before) whose (list, id) is in ``keys``."""
    path = Path(path)
    with _reading(path):
        return _Load(path, algo, fast=False).lines_of(keys)
