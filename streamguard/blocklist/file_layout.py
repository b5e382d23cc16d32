"""How the lines of a blocklist file are laid out, told from its first data line.

streamguard's own CSV/TSV (a header naming the columns), bare hex hashes (with ``--algo``),
and the exports of hash-sharing programmes (docs/blocklist-formats.md): ThreatExchange CSVs,
known by their header, whose verdict column decides which rows are kept;
python-threatexchange's file exchange (``signal_type signal``, a vPDQ signal's JSON list
too), HMA's PDQ data file (``hash,id,timestamp,tags``) and vpdq's frame file
(``frame,quality,hash,timestamp``), known by the shape of their lines. JSON lines have no
layout.
"""

import csv
from collections.abc import Mapping
from dataclasses import dataclass

from streamguard.blocklist.entry import COLUMNS, HEX_DIGITS

VERDICT = "verdict"  # a ThreatExchange opinion column: rows with a negative one are skipped


class LineError(Exception):
    """A problem with one line; the loader adds the file name."""

    def __init__(self, number: int, problem: str) -> None:
        super().__init__(f"line {number}: {problem}")


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
        "category": VERDICT,
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
        "td_status": VERDICT,
        "td_subjective_tags": "label",
    },
    {"MALICIOUS": True, "SUSPICIOUS": True, "NON_MALICIOUS": False, "UNKNOWN": False},
)
_HEADER_SHAPES = {
    ("signal_type", "signal_str"): _TE_DATASET,
    ("td_indicator_type", "td_raw_indicator"): _TE_UI,
}


@dataclass(frozen=True, slots=True)
class FileLayout:
    """Where the fields of a data line go."""

    delimiter: str | None  # None: the whole line is the hash
    width: int  # fields per line
    positions: Mapping[str, int]  # COLUMNS name or VERDICT -> field index
    algo: str | None  # for lines without an algo field
    verdicts: Mapping[str, bool]
    header: bool  # the width comes from a header line
    named_video: bool = False  # each line a frame of one video, named after the file


def _is_hex(text: str, length: int) -> bool:
    """Whether ``text`` is ``length`` hex digits."""
    return len(text) == length and HEX_DIGITS.issuperset(text)


def _is_typed_line(line: str) -> bool:
    """python-threatexchange's file exchange: ``signal_type signal``, the signal a hex hash
    or a vPDQ signal (``vpdq ["hex,quality,ts", ...]``)."""
    words = line.split(" ")
    if len(words) > 1 and words[0].lower() == "vpdq" and words[1].startswith("["):
        return True
    return (
        len(words) == 2 and "," not in line and "\t" not in line and HEX_DIGITS.issuperset(words[1])
    )


def _is_hma_line(line: str) -> bool:
    """HMA's PDQ data file: ``hash,id,timestamp,tags``, no header."""
    parts = line.split(",")
    return len(parts) == 4 and _is_hex(parts[0], 64) and parts[1].isascii() and parts[1].isdigit()


def _is_vpdq_frame_line(line: str) -> bool:
    """vpdq's own hash file (``vpdq-hash-video``): ``frame,quality,hash,timestamp``."""
    parts = line.split(",")
    return (
        len(parts) == 4
        and all(part.isascii() and part.isdigit() for part in parts[:2])
        and _is_hex(parts[2], 64)
        and parts[3].replace(".", "", 1).isdigit()
    )


def layout_of(first: str, number: int, algo: str | None) -> FileLayout | None:
    """How to read a file whose first data line is ``first``; None for JSON lines."""
    stripped = first.strip()
    if stripped.startswith("{"):
        return None
    if algo is not None and HEX_DIGITS.issuperset(stripped):
        return FileLayout(None, 1, {"hash": 0}, algo, {}, header=False)
    if _is_typed_line(stripped):
        return FileLayout(" ", 2, {"algo": 0, "hash": 1}, algo, {}, header=False)
    if algo in (None, "pdq") and _is_hma_line(stripped):
        return FileLayout(",", 4, {"hash": 0, "id": 1, "label": 3}, "pdq", {}, header=False)
    if algo in (None, "pdq") and _is_vpdq_frame_line(stripped):
        positions = {"quality": 1, "hash": 2, "ts": 3}
        return FileLayout(",", 4, positions, "pdq", {}, header=False, named_video=True)
    return _header_layout(first, number, algo)


def _header_layout(first: str, number: int, algo: str | None) -> FileLayout:
    """The layout a header line gives; LineError if it lacks a needed column."""
    delimiter = "\t" if "\t" in first else ","
    header = [name.strip().lower() for name in next(csv.reader([first], delimiter=delimiter))]
    shape = next(
        (shape for names, shape in _HEADER_SHAPES.items() if set(names) <= set(header)),
        _STREAMGUARD,
    )
    positions = {shape.names[name]: i for i, name in enumerate(header) if name in shape.names}
    if missing := ({"hash"} if algo else {"algo", "hash"}) - set(positions):
        raise LineError(
            number,
            f"header lacks column(s) {', '.join(sorted(missing))} "
            f"(expected {','.join(COLUMNS)}; for bare hashes pass --algo)",
        )
    return FileLayout(delimiter, len(header), positions, algo, shape.verdicts, header=True)


def is_data(line: str) -> bool:
    """Not blank, not a ``#`` comment."""
    return bool(line.strip()) and not line.lstrip().startswith("#")
