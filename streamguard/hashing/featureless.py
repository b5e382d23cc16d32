"""Pictures without features, and the hashes the project's hashers give them.

A black, white or grey frame, a gradient, a vignette, or a fade of any of these is what a
benign stream shows between its scenes. Their hashes must neither be loaded as blocklist
entries (blocklist/degenerate.py) nor be looked up for a frame (detect/matcher.py).

The set: flat pictures at nine levels; linear gradients in eight directions and radial
gradients (dark or bright centre, elliptical and circular), each over the full range and
faded: towards black (0-64), towards white (192-255) and to a faint ripple around mid-grey
(112-144). 57 pictures, 256x144, the size pHash and dHash reduce a 720p frame to first
(``IMAGEHASH_VIDEO_BASE``). Hashing them takes about 0.1 s, once per process.
"""

import functools
import math
from collections.abc import Iterator

import numpy as np

from streamguard.hashing import hash_luma
from streamguard.hashing.preprocess import Luma

WIDTH, HEIGHT = 256, 144
LEVELS = (0, 32, 64, 96, 128, 160, 192, 224, 255)
RANGES = ((0, 255), (0, 64), (192, 255), (112, 144))  # full, faded to black, to white, faint
DIRECTIONS = 8


def _shapes() -> Iterator[tuple[str, np.ndarray]]:
    """Gradient shapes as float pictures; any range, any orientation of the values."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    u, v = x / (WIDTH - 1) - 0.5, y / (HEIGHT - 1) - 0.5
    for step in range(DIRECTIONS):
        angle = 2 * math.pi * step / DIRECTIONS
        yield f"linear{round(math.degrees(angle))}", math.cos(angle) * u + math.sin(angle) * v
    ellipse = np.hypot(u, v)
    circle = np.hypot(x - (WIDTH - 1) / 2, y - (HEIGHT - 1) / 2)
    for name, distance in (("radial", ellipse), ("circle", circle)):
        yield f"{name}-bright-centre", -distance
        yield f"{name}-dark-centre", distance


def featureless_pictures() -> Iterator[tuple[str, np.ndarray]]:
    """(name, 8-bit grey picture) for every picture of the set."""
    for level in LEVELS:
        yield f"flat{level}", np.full((HEIGHT, WIDTH), level, np.uint8)
    for name, shape in _shapes():
        unit = (shape - shape.min()) / (shape.max() - shape.min())
        for low, high in RANGES:
            pixels = np.rint(low + (high - low) * unit).astype(np.uint8)
            yield f"{name}:{low}-{high}", pixels


@functools.cache
def featureless_codes(algo: str) -> np.ndarray:
    """The distinct ``algo`` hashes of the set, one uint8 row each (PDQ's zero hash, the
    hash of black, among them)."""
    digests = [hash_luma(Luma(pixels), [algo])[0].digest for _, pixels in featureless_pictures()]
    codes = np.frombuffer(b"".join(digests), np.uint8).reshape(len(digests), -1)
    return np.unique(codes, axis=0)
