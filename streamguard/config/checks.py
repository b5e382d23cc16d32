"""Checks of single values that several tables share; each failure names the setting."""

from typing import Any

from streamguard.config.errors import ConfigError
from streamguard.hashing import ALGORITHMS, check_distance
from streamguard.values import positive_seconds


def seconds(where: str, value: Any) -> float:
    if (checked := positive_seconds(value)) is None:
        raise ConfigError(f"{where}: expected a positive number of seconds, got {value!r}")
    return checked


def distances(where: str, value: Any) -> dict[str, int]:
    """``{ ALGO = bits }``, each within its algorithm's range."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected {{ ALGO = bits }} with ALGO in {list(ALGORITHMS)}")
    for algo, bits in value.items():
        try:
            check_distance(algo, bits)
        except ValueError as exc:
            raise ConfigError(f"{where}.{algo}: {exc}") from None
    return dict(value)
