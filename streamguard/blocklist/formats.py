"""Blocklist files: streamguard CSV/TSV, JSON lines, bare hex, and hash-sharing exports.

Columns (DESIGN.md): ``algo,hash,id,list,category,label``; only ``algo`` and
``hash`` are required (``algo`` too may be given with ``--algo`` instead).
ThreatExchange and HMA exports are recognised by their header or line shape
and mapped onto the same columns (docs/blocklist-formats.md).
Errors name the file, the line and the problem, never the hash value: hash
lists are confidential and must not reach logs.

Files are read in chunks. The entry and its checks are in entry.py, how a
file's lines are laid out in file_layout.py, the parsing of a chunk in
chunk_parser.py; this module reads files, JSON lines, and finds duplicates.
"""

import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import TextIO

from streamguard.blocklist.chunk_parser import ChunkParser
from streamguard.blocklist.entry import Entry, parse_entry
from streamguard.blocklist.file_layout import LineError, is_data, layout_of
from streamguard.blocklist.video_signal import (
    frame_map_entries,
    is_frame_map,
    is_vpdq,
    signal_entries,
)
from streamguard.errors import BlocklistFormatError

_CHUNK_CHARS = 1 << 17

_LIST, _ID, _KEY = attrgetter("list"), attrgetter("id"), attrgetter("list", "id")


class _Duplicate(Exception):
    """A (list, id) came twice; the line-numbered parser says where."""


def _chunks(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, lines) in blocks of about ``_CHUNK_CHARS`` characters.

    A line longer than a block (a vPDQ signal: an hour of video is 3,600 frames, about
    270,000 characters on one line) is gathered in parts and joined once.
    """
    number, pending = 1, []
    while block := stream.read(_CHUNK_CHARS):
        if "\n" not in block:
            pending.append(block)
            continue
        lines = "".join([*pending, block]).split("\n")
        pending = [lines.pop()]
        yield number, lines
        number += len(lines)
    if rest := "".join(pending):
        yield number, [rest]


def _from_first_data_line(
    chunks: Iterator[tuple[int, list[str]]],
) -> Iterator[tuple[int, list[str]]]:
    """The chunks, the first one cut to start at the first data line; none if there is none."""
    for number, lines in chunks:
        start = next((i for i, line in enumerate(lines) if is_data(line)), None)
        if start is not None:
            yield number + start, lines[start:]
            yield from chunks
            return


def _json_entries(line: str, default_algo: str | None, default_list: str) -> list[Entry]:
    """The entries of one JSON line (one, or a vPDQ signal's frames); ValueError says what
    is wrong."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError):  # a number of over 4300 digits, too deep a nesting
        raise ValueError("not valid JSON (a number too long or nesting too deep)") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    if is_frame_map(record):
        return frame_map_entries(record, default_list)
    row = {str(k): _text(v) for k, v in record.items()}
    if is_vpdq(row, default_algo):
        return signal_entries(row, default_list)
    return [parse_entry(row, default_algo=default_algo, default_list=default_list)]


def _text(value: object) -> str:
    """A JSON value as a field's text: null is empty, a list (a vPDQ signal) stays JSON."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list) else str(value)


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
) -> tuple[ChunkParser | None, Iterator[tuple[int, list[str]]]]:
    """The parser for the file's layout (None for JSON lines) and its chunks of data lines,
    the header left out."""
    chunks = _from_first_data_line(_chunks(stream))
    first = next(chunks, None)
    if first is None:
        return None, iter(())
    number, lines = first
    layout = layout_of(lines[0], number, algo)
    if layout is None:
        return None, chain([first], chunks)
    if layout.header:
        first = (number + 1, lines[1:])
    return ChunkParser(layout, default_list), chain([first], chunks)


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

    def _chunk(self, parser: ChunkParser, number: int, lines: list[str]) -> None:
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
        found: list[tuple[int, Entry]] = []
        for line_number, line in enumerate(lines, start=number):
            if not is_data(line):
                continue
            try:
                entries = _json_entries(line, self.algo, self.path.stem)
            except ValueError as exc:
                raise LineError(line_number, str(exc)) from None
            found += [(line_number, entry) for entry in entries if entry.indexed]
        return found

    def _add(self, entries: list[Entry], numbers: list[int] | None = None) -> None:
        if self.fast:
            self.keys.add(list(map(_LIST, entries)), list(map(_ID, entries)))
        else:
            assert numbers is not None  # the exact pass numbers every entry
            for number, entry in zip(numbers, entries, strict=True):
                if (first := self.lines.setdefault(entry.key, number)) != number:
                    raise LineError(number, f"duplicate id '{entry.id}' (first on line {first})")
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
    except LineError as exc:
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
