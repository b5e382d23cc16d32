"""Luma preparation shared by the hashers: range expansion and pre-scaling."""

from dataclasses import dataclass

import cv2
import numpy as np

# Each stream already has its own thread; OpenCV's own pool on top only adds
# wake-ups: measured, it doubled the CPU cost of a PDQ hash of a 720p frame.
cv2.setNumThreads(1)

# Studio-range luma (16..235, what H.264 carries) to full range (0..255), the
# scale an RGB -> grey conversion of the same frame would give.
_STUDIO_TO_FULL_F32 = np.clip((np.arange(256) - 16) * 255.0 / 219.0, 0, 255).astype(np.float32)
_STUDIO_TO_FULL = np.round(_STUDIO_TO_FULL_F32).astype(np.uint8)
_IDENTITY_F32 = np.arange(256, dtype=np.float32)

PDQ_MAX_SIDE = 640
"""Area-averaging larger pictures down to 640 px before PDQ's own 64x64 box
filter keeps hashes within a few bits of the reference and makes a 720p frame
~7x cheaper to hash; 512 px drifted up to 14 bits (docs/hashing.md)."""


IMAGEHASH_VIDEO_BASE = 128
"""Video frames are area-averaged by a whole factor to about 128 px on the short
side before pHash/dHash's Lanczos reduction: 5.8 -> 0.9 ms per 720p frame, with
the same small drift from imagehash-on-RGB as without it (docs/hashing.md).
Pictures are never pre-scaled, so their hashes equal imagehash's bit for bit."""


@dataclass(frozen=True, slots=True)
class Luma:
    """An 8-bit grey picture. Video luma is mostly studio range (16..235).

    The range is expanded only where a hasher needs it, and as late as possible:
    PDQ does it on its pre-scaled float copy, at a tenth of the cost of a
    lookup over a full 720p plane.
    """

    pixels: np.ndarray
    studio_range: bool = False
    video: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape

    def full_range(self) -> np.ndarray:
        """Full-range pixels (0..255), the scale a grey conversion of RGB would give."""
        return cv2.LUT(self.pixels, _STUDIO_TO_FULL) if self.studio_range else self.pixels

    def imagehash_input(self) -> np.ndarray:
        """What pHash/dHash reduce: full range, and for video pre-scaled (see above)."""
        factor = min(self.pixels.shape) // IMAGEHASH_VIDEO_BASE if self.video else 1
        if factor <= 1:
            return self.full_range()
        height, width = self.pixels.shape
        size = (width // factor, height // factor)
        small = cv2.resize(self.pixels, size, interpolation=cv2.INTER_AREA)
        return Luma(small, self.studio_range).full_range()

    def float_full_range(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` (this luma, resized) as float32 in full range."""
        return cv2.LUT(pixels, _STUDIO_TO_FULL_F32 if self.studio_range else _IDENTITY_F32)


def fit_within(luma: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale by area averaging so that neither side exceeds ``max_side``."""
    height, width = luma.shape
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return luma
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
