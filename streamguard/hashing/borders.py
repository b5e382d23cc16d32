"""Find letterbox, pillarbox and padding bars around a picture, so it can be hashed
without them.

Perceptual hashes see the whole frame: a 16:9 stream showing a 4:3 picture between
black bars, or a picture padded by 20% in a solid colour, hashes far from the
picture itself (plain PDQ finds ~1% of 20%-padded copies). A bar is a run of rows
(or columns) at an edge that are flat and of one colour; the content box is what
the four runs leave, found on a small copy and then refined to the exact line at
full resolution. Natural flat edges (a clear sky) also look
like bars: callers hash the frame both with and without them.
"""

import cv2
import numpy as np

ANALYSIS_SIDE = 256  # bars are found on a copy this size: ~0.1 ms per 720p frame
FLAT_STD = 5.0  # a bar row's pixels vary less than this (0..255 scale)
SAME_LEVEL = 10.0  # and its mean stays this close to the outermost row's
MIN_BAR = 0.02  # a bar covers at least 2% of the side...
MAX_BAR = 0.45  # ...and at most 45%
MIN_CONTENT = 0.2  # what remains must be at least 20% of each side


def _flat(lines: np.ndarray, level: float) -> np.ndarray:
    """Which lines (rows of ``lines``) are flat and at ``level``."""
    flat: np.ndarray = lines.std(axis=1) <= FLAT_STD
    flat &= np.abs(lines.mean(axis=1) - level) <= SAME_LEVEL
    return flat


def _bar(lines: np.ndarray) -> int:
    """How many leading lines (rows of ``lines``) form a flat bar of one level."""
    flat = _flat(lines, float(lines[0].mean()))
    return int(np.argmin(flat)) if not flat.all() else len(flat)


def _refine(lines: np.ndarray, bar: int, to_full: float) -> int:
    """The bar's exact width at full resolution, from ``bar`` lines of the small copy:
    the first full-resolution line past the bar's level near that estimate."""
    start = max(0, int((bar - 1) * to_full))
    band = lines[start : int((bar + 1) * to_full) + 1].astype(np.float32)
    flat = _flat(band, float(lines[0].astype(np.float32).mean()))
    return start + (int(np.argmin(flat)) if not flat.all() else len(flat))


def content_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` of the picture inside its bars (bottom and right
    exclusive), or None when there are no bars."""
    height, width = pixels.shape
    scale = min(1.0, ANALYSIS_SIDE / max(height, width))
    small = pixels
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    rows, cols = small.shape
    sides = [  # the small copy's lines and the full picture's, from each edge inwards
        (small, pixels, rows, height / rows),
        (small[::-1], pixels[::-1], rows, height / rows),
        (small.T, pixels.T, cols, width / cols),
        (small.T[::-1], pixels.T[::-1], cols, width / cols),
    ]
    bars = []
    for lines, full, count, to_full in sides:
        bar = _bar(lines)
        bars.append(_refine(full, bar, to_full) if MIN_BAR * count <= bar <= MAX_BAR * count else 0)
    if not any(bars):
        return None
    top, bottom, left, right = bars
    if height - top - bottom < MIN_CONTENT * height or width - left - right < MIN_CONTENT * width:
        return None
    return top, height - bottom, left, width - right


def inner_boxes(pixels: np.ndarray) -> list[tuple[str, tuple[slice, slice]]]:
    """Where the picture inside its bars is (rows, columns), each named: ``borders``, and
    ``borders-even`` when opposite bars differ. A picture with a margin of the bars' colour
    makes its side's bar look wider; letterbox and padding bars are even, so the narrower
    of two opposite bars is tried on both sides too. Empty when there are no bars."""
    box = content_box(pixels)
    if box is None:
        return []
    height, width = pixels.shape
    top, bottom, left, right = box
    inner = [("borders", (slice(top, bottom), slice(left, right)))]
    row_bar, col_bar = min(top, height - bottom), min(left, width - right)
    even = (row_bar, height - row_bar, col_bar, width - col_bar)
    if even != box and even != (0, height, 0, width):
        rows, cols = slice(row_bar, height - row_bar), slice(col_bar, width - col_bar)
        inner.append(("borders-even", (rows, cols)))
    return inner


def inner_pictures(pixels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``inner_boxes`` as views of ``pixels``."""
    return [(name, pixels[rows, cols]) for name, (rows, cols) in inner_boxes(pixels)]
