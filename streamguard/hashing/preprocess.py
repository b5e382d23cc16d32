"""Luma preparation shared by the hashers: range expansion and pre-scaling."""

import cv2
import numpy as np

# Studio-range luma (16..235, what H.264 carries) to full range (0..255), the
# scale an RGB -> grey conversion of the same frame would give.
_STUDIO_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)

PDQ_MAX_SIDE = 640
"""Area-averaging larger pictures down to 640 px before PDQ's own 64x64 box
filter keeps hashes within a few bits of the reference and makes a 720p frame
~7x cheaper to hash; 512 px drifted up to 14 bits (docs/hashing.md)."""


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
