"""Display matrices to quarter turns and mirrors (every real one is checked against
ffmpeg in tests/integration/test_orientation.py)."""

import math

import numpy as np
import pytest

from streamguard.ingest.orientation import _shown

PICTURE = np.arange(12, dtype=np.uint8).reshape(3, 4)


def turned_by(degrees: float, hflip: bool = False) -> np.ndarray:
    """FFmpeg's matrix for a counter-clockwise turn (then a mirror), 16.16 fixed point."""
    radians = math.radians(degrees)
    cos, sin = round(math.cos(radians) * 65536), round(math.sin(radians) * 65536)
    matrix = np.array([cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30], np.int32)
    if hflip:
        matrix[[0, 3, 6]] *= -1
    return matrix


@pytest.mark.parametrize(
    ("degrees", "hflip", "expected"),
    [
        (90, False, np.rot90(PICTURE, 1)),
        (-90, False, np.rot90(PICTURE, -1)),
        (180, False, PICTURE[::-1, ::-1]),
        (0, True, PICTURE[:, ::-1]),
        (90, True, np.rot90(PICTURE, 1)[:, ::-1]),
        (80, False, np.rot90(PICTURE, 1)),  # other angles: the nearest quarter turn
        (-100, False, np.rot90(PICTURE, -1)),
    ],
)
def test_turns_and_mirrors(degrees, hflip, expected):
    shown = _shown(PICTURE, turned_by(degrees, hflip))
    assert np.array_equal(shown, expected) and shown.flags.c_contiguous


@pytest.mark.parametrize("matrix", [turned_by(0), turned_by(10), np.zeros(9, np.int32)])
def test_upright_or_unreadable_matrices_leave_the_picture_alone(matrix):
    assert _shown(PICTURE, matrix) is PICTURE  # not even copied
