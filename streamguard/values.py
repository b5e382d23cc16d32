"""Checks of setting values shared by the TOML parsers (run, policy, enforce)."""

import math
from typing import Any


def positive_seconds(value: Any) -> float | None:
    """``value`` as seconds if it is a finite positive number (TOML also has ``nan`` and
    ``inf``, and ``true`` is an int in Python), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value < math.inf else None
