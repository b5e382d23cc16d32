"""The data lines of one blocklist file turned into entries, chunk by chunk.

A chunk is first parsed column by column with plain string operations; a chunk that is
unusual (quotes, indented lines) or wrong goes through the line-by-line parser, which has
the same results and names the first bad line. A vPDQ signal (a whole video's frames in
one field) is always parsed line by line: its algo is not one of a plain entry.
"""

import csv
from collections.abc import Callable, Sequence
from itertools import compress, repeat
from typing import Any

from streamguard.blocklist.entry import (
    DEFAULT_CATEGORY,
    Entry,
    algo_name,
    derived_ids,
    new_entries,
    parse_entry,
    parse_quality,
    parse_ts,
    shown,
    video_frame,
)
from streamguard.blocklist.file_layout import VERDICT, FileLayout, LineError, is_data
from streamguard.blocklist.video_signal import is_vpdq, signal_entries
from streamguard.hashing import ALGORITHMS


def _normalized(values: Sequence[str], normalize: Callable[[str], str]) -> list[str]:
    """``normalize`` of each value, worked out once per distinct value and shared."""
    if values and values.count(values[0]) == len(values):
        return [normalize(values[0])] * len(values)
    table = {value: normalize(value) for value in set(values)}
    return list(map(table.__getitem__, values))


class ChunkParser:
    """Turns the data lines of one file into entries, chunk by chunk."""

    def __init__(self, layout: FileLayout, default_list: str) -> None:
        """``default_list``: the file's name without its last suffix, which is also the
        video of a vpdq frame file (``layout.named_video``)."""
        self.layout = layout
        self.default_list = default_list
        self.default_video = default_list if layout.named_video else ""

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
        if VERDICT in columns:
            judged = self._judged(columns)
            if judged is None:
                return None
            columns, count = judged, len(judged["label"])
        algos = self._algos(columns, count)
        digests = None if algos is None else _digests(columns["hash"], algos)
        frames = _frames(columns, self.default_video)
        if algos is None or digests is None or frames is None:
            return None
        entries = new_entries(
            (
                algos,
                digests,
                self._ids(columns, algos, digests, frames),
                self._column(
                    columns, "list", count, lambda text: text.strip() or self.default_list
                ),
                self._column(columns, "category", count, _category),
                list(map(str.strip, columns["label"])) if "label" in columns else [""] * count,
                *frames,
            )
        )
        return [entry for entry in entries if entry.indexed] if frames else entries

    def _judged(self, columns: dict[str, Sequence[str]]) -> dict[str, Sequence[str]] | None:
        """Rows without a negative verdict, the verdict put before the label; None if unknown."""
        known = self.layout.verdicts
        verdicts = _normalized(columns.pop(VERDICT), lambda text: text.strip().upper())
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
            names = {text: algo_name(text or default) for text in set(columns["algo"])}
            known = {text: name for text, name in names.items() if name is not None}
            if len(known) < len(names):
                return None
            return list(map(known.__getitem__, columns["algo"]))
        name = algo_name(self.layout.algo or "")
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
        columns: dict[str, Sequence[str]],
        algos: list[str],
        digests: list[bytes],
        frames: tuple[Sequence[Any], ...],
    ) -> list[str]:
        """The id of each row, derived from its hash (and video frame) where there is none."""
        where = list(map(video_frame, *frames[:2])) if frames else None
        if "id" not in columns:
            return derived_ids(algos, map(bytes.hex, digests), where)
        ids = list(map(str.strip, columns["id"]))
        if "" in ids:
            missing = [not entry_id for entry_id in ids]
            derived = iter(
                derived_ids(
                    compress(algos, missing),
                    map(bytes.hex, compress(digests, missing)),
                    None if where is None else compress(where, missing),
                )
            )
            ids = [entry_id or next(derived) for entry_id in ids]
        return ids

    def exact(
        self, number: int, lines: list[str]
    ) -> tuple[list[tuple[int, Entry]], LineError | None]:
        """(line number, entry) for the lines before the first bad one, and its error if any."""
        found: list[tuple[int, Entry]] = []
        for line_number, line in enumerate(lines, start=number):
            if not is_data(line):
                continue
            try:
                entries = self.entries(line)
            except ValueError as exc:
                return found, LineError(line_number, str(exc))
            found += [(line_number, entry) for entry in entries if entry.indexed]
        return found, None

    def entries(self, line: str) -> list[Entry]:
        """The entries of one data line: none if its verdict says to skip it, one per frame
        for a vPDQ signal (blocklist/video_signal.py), else one."""
        layout = self.layout
        if layout.delimiter is None:
            record = {"hash": line}
        else:
            if layout.delimiter != " ":
                values = next(csv.reader([line], delimiter=layout.delimiter))
            elif is_vpdq({"algo": line.split(None, 1)[0]}, None):
                values = line.split(None, 1)  # vpdq ["hex,quality,ts", ...]
            else:
                values = line.split()
            if len(values) != layout.width:
                expected = "header has" if layout.header else "expected"
                raise ValueError(f"{len(values)} fields, {expected} {layout.width}")
            record = {name: values[i] for name, i in layout.positions.items()}
        if VERDICT in record:
            verdict = record.pop(VERDICT).strip().upper()
            if verdict and verdict not in layout.verdicts:
                raise ValueError(f"unknown ThreatExchange verdict {shown(verdict)}")
            if not layout.verdicts.get(verdict, True):
                return []
            record["label"] = _labelled(verdict, record.get("label", ""))
        if self.default_video:
            record["video"] = self.default_video
        if is_vpdq(record, layout.algo):
            return signal_entries(record, self.default_list)
        return [parse_entry(record, default_algo=layout.algo, default_list=self.default_list)]


def _labelled(verdict: str, tags: str) -> str:
    """The label of a ThreatExchange row: its verdict, then its tags."""
    return " ".join(filter(None, (verdict, tags.strip())))


def _frames(
    columns: dict[str, Sequence[str]], default_video: str
) -> tuple[Sequence[Any], ...] | None:
    """The (video, ts, quality) columns, () if the file has none; None if a row is invalid.
    ``default_video``: the video of every row of a file without a video column."""
    if not {"video", "ts", "quality"} & columns.keys():
        return ()
    count = len(columns["hash"])
    videos = list(map(str.strip, columns.get("video", [default_video] * count)))
    try:
        times = list(map(parse_ts, columns.get("ts", [""] * count)))
        qualities = list(map(parse_quality, columns.get("quality", [""] * count)))
    except ValueError:
        return None
    if any(ts is not None and not video for video, ts in zip(videos, times, strict=True)):
        return None
    return videos, times, qualities


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
