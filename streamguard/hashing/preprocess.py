"""Luma preparation shared by the hashers: range expansion and pre-scaling."""

import cv2
import numpy as np

# Studio-range luma (16..235, what H.264 carries) to full range (0..255), the
# scale an RGB -> grey conversion of the same frame would give.
_STUDIO_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)

PDQ_MAX_SIDE = 512
"""PDQ's 64x64 box downscale loses nothing when the input is first pre-scaled to
512 px by area averaging, and the hash is then ~10x cheaper (docs/hashing.md)."""


def studio_to_full_range(luma: np.ndarray) -> np.ndarray:
    """Expand limited-range (16..235) luma to full range."""
    return cv2.LUT(luma, _STUDIO_TO_FULL)


def fit_within(luma: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale by area averaging so that neither side exceeds ``max_side``."""
    height, width = luma.shape
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return luma
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
