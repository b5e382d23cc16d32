"""What an evaluation run is asked for: shared by the ``eval`` command line, which must
start fast, and the evaluation, which imports the encoders and the corpus."""

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OUTPUT = Path("streamguard-eval")
"""Relative: reports go under the directory ``eval`` runs in, wherever streamguard is installed."""


@dataclass(slots=True)
class Options:
    images: Path | None = None
    negatives: Path | None = None
    footage_minutes: float | None = None  # None: 30, or 0.2 with quick
    quick: bool = False
    output: Path = DEFAULT_OUTPUT
    thresholds: dict[str, int] = field(default_factory=dict)
    crops_per_picture: int | None = None  # None: 40, or 3 with quick
    seed: int = 8
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))
