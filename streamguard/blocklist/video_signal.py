"""vPDQ signals as blocklist entries: one PDQ entry per frame, with ``video`` and ``ts``.

A record (a line of a file, docs/blocklist-formats.md) whose algo is ``vpdq`` holds a
whole signal, ThreatExchange's JSON list of ``"hex,quality,ts"``; the older JSON shape
keyed by frame number (``{"0": {"quality", "hash", "timestamp"}, ...}``) is one too.
The video's id is the record's ``id`` where it has one, else ``video_id_of`` the signal.
Times ThreatExchange rounded to three significant digits are put back
(``restored_times``).
Every frame is kept, in order, even where the video shows one picture twice (the
reference matcher dedupes hashes, but times matter for matching in order); the same
hash at the same time twice is one entry. Frames of quality below 50 are kept here and
left out of the index by the loaders (``Entry.indexed``).
"""

import hashlib
from collections.abc import Mapping

from streamguard.blocklist.entry import Entry, parse_entry
from streamguard.hashing.vpdq_signal import (
    VPDQ,
    VpdqFrame,
    format_signal,
    parse_frame,
    parse_signal,
    restored_times,
)


def video_id_of(frames: list[VpdqFrame]) -> str:
    """``v`` and 16 hex digits of the SHA-256 of the signal as ThreatExchange writes it:
    the same signal, however spaced or cased, gets the same id, so importing it twice
    updates the same entries."""
    return "v" + hashlib.sha256(format_signal(frames).encode()).hexdigest()[:16]


def frame_entries(
    frames: list[VpdqFrame], *, video: str, row: Mapping[str, str], default_list: str
) -> list[Entry]:
    """One PDQ entry per frame of ``video``, each with ``row``'s list, category and label;
    derived ids, the same hash at the same time once."""
    shared = {name: row.get(name) or "" for name in ("list", "category", "label")}
    entries: dict[str, Entry] = {}
    for frame in frames:
        entry = parse_entry(
            shared
            | {
                "algo": "pdq",
                "hash": frame.digest.hex(),
                "video": video,
                "ts": repr(frame.ts_s),
                "quality": str(frame.quality),
            },
            default_algo=None,
            default_list=default_list,
        )
        entries.setdefault(entry.id, entry)
    return list(entries.values())


def is_vpdq(row: Mapping[str, str], default_algo: str | None) -> bool:
    """Whether a record holds a vPDQ signal."""
    return (row.get("algo") or default_algo or "").strip().lower() == VPDQ


def signal_entries(row: Mapping[str, str], default_list: str) -> list[Entry]:
    """The frames of a ``vpdq`` record (the signal in ``hash``); ValueError if malformed."""
    frames = parse_signal(row.get("hash") or "")
    video = (row.get("id") or "").strip() or video_id_of(frames)
    frames = restored_times(frames)
    return frame_entries(frames, video=video, row=row, default_list=default_list)


def is_frame_map(record: Mapping[str, object]) -> bool:
    """The older vPDQ JSON: frame numbers mapped to ``{"quality", "hash", "timestamp"}``."""
    return bool(record) and all(
        key.isascii() and key.isdigit() and isinstance(value, dict) for key, value in record.items()
    )


def frame_map_entries(record: Mapping[str, object], default_list: str) -> list[Entry]:
    """The frames of the older vPDQ JSON, in frame order; ValueError if malformed."""
    frames = []
    for number in sorted(record, key=int):
        feature = record[number]
        assert isinstance(feature, dict)  # is_frame_map checked
        hex_hash = feature.get("hash")
        try:
            if not isinstance(hex_hash, str):
                raise ValueError("hash must be a string")
            frames.append(parse_frame(hex_hash, feature.get("quality"), feature.get("timestamp")))
        except ValueError as exc:
            raise ValueError(f"vpdq frame {number}: {exc}") from None
    return frame_entries(frames, video=video_id_of(frames), row={}, default_list=default_list)
