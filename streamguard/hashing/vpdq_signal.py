"""vPDQ signals as text: the ``["HEX,QUALITY,TS", ...]`` list of python-threatexchange.

A vPDQ signal is one PDQ hash per sampled frame of a video, with the frame's quality
and its time in seconds. ThreatExchange writes each frame as ``hex,quality,ts`` with the
time to three significant digits (``f"{ts:.3}"``: 123.4 s is ``1.23e+02``), and the
signal as a JSON list of those strings (``vpdq_util.py`` of the threatexchange 1.2
package). Errors never show a hash value.
"""

import json
import math
from dataclasses import dataclass

VPDQ = "vpdq"  # the signal type's name in ThreatExchange
PDQ_HEX_DIGITS = 64
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class VpdqFrame:
    """One frame of a vPDQ signal."""

    digest: bytes  # the 32-byte PDQ hash
    quality: int  # 0..100
    ts_s: float  # seconds into the video

    @property
    def compact(self) -> str:
        """``hex,quality,ts`` as ThreatExchange writes it."""
        return f"{self.digest.hex()},{self.quality},{self.ts_s:.3}"


def _written_interval(ts_s: float) -> tuple[float, float]:
    """The times that ThreatExchange's three significant digits write as ``ts_s``."""
    if ts_s <= 0:
        return 0.0, 0.0005
    half = 10 ** (math.floor(math.log10(ts_s)) - 2) / 2 * (1 + 1e-9)
    return ts_s - half, ts_s + half


def restored_times(frames: list[VpdqFrame]) -> list[VpdqFrame]:
    """``frames`` with the times ThreatExchange's ``:.3`` formatting rounded away put back.

    Past 100 s a time is written to the second, past 1,000 s to ten seconds: ten frames
    of an hour-long video share one time, too coarse to match in order (detect/video.py).
    vPDQ hashes every ``int(fps x seconds_per_hash)``-th frame, so the times of a whole
    signal are ``first + i x step``. The steps every frame's written time allows are
    intersected; if they agree, each time is recomputed (a whole-second step, vPDQ's at
    whole frame rates, is taken where allowed). Frames that do not fit such a line (an
    edited signal) keep their written times.
    """
    if len(frames) < 2 or frames[-1].ts_s < 100:
        return frames
    first = frames[0].ts_s
    low, high = 0.0, math.inf
    for i, frame in enumerate(frames[1:], start=1):
        lo, hi = _written_interval(frame.ts_s)
        low, high = max(low, (lo - first) / i), min(high, (hi - first) / i)
    if not 0 < low <= high:
        return frames
    step = 1.0 if low <= 1.0 <= high else (low + high) / 2
    return [
        VpdqFrame(frame.digest, frame.quality, first + i * step) for i, frame in enumerate(frames)
    ]


def format_signal(frames: list[VpdqFrame]) -> str:
    """The JSON list ThreatExchange stores as a vPDQ signal (``json.dumps`` spacing)."""
    return json.dumps([frame.compact for frame in frames])


def signal_line(frames: list[VpdqFrame]) -> str:
    """``vpdq [...]``: the line ``threatexchange hash video`` prints, and reads back."""
    return f"{VPDQ} {format_signal(frames)}"


def parse_frame(hex_hash: str, quality: object, ts_s: object) -> VpdqFrame:
    """A frame from its three parts; ValueError names what is wrong, never the hash."""
    hex_hash = hex_hash.strip().lower()
    if len(hex_hash) != PDQ_HEX_DIGITS or not _HEX.issuperset(hex_hash):
        raise ValueError(f"hash must be {PDQ_HEX_DIGITS} hex digits")
    if isinstance(quality, str):
        quality = int(quality.strip()) if quality.strip().isdigit() else -1
    if not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality <= 100:
        raise ValueError("quality must be a whole number from 0 to 100")
    try:
        seconds = float(ts_s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError("time is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("time must be a finite number of seconds >= 0")
    return VpdqFrame(bytes.fromhex(hex_hash), quality, seconds)


def parse_signal(text: str) -> list[VpdqFrame]:
    """The frames of a signal in ThreatExchange's JSON list form; ValueError if malformed.

    Frame N (from 1) is named in errors, never its hash.
    """
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"vpdq signal is not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError):
        raise ValueError("vpdq signal is not valid JSON (too long a number, too deep)") from None
    if not isinstance(items, list) or not items:
        raise ValueError('vpdq signal must be a non-empty JSON list of "hex,quality,ts"')
    frames = []
    for number, item in enumerate(items, start=1):
        parts = item.split(",") if isinstance(item, str) else []
        if len(parts) != 3:
            raise ValueError(f'vpdq frame {number}: expected "hex,quality,ts"')
        try:
            frames.append(parse_frame(*parts))
        except ValueError as exc:
            raise ValueError(f"vpdq frame {number}: {exc}") from None
    return frames
