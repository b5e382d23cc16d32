"""Exit codes and messages of the ``streamguard`` command (exit codes follow clamscan)."""

import sys
from collections.abc import Callable

from streamguard.errors import StreamguardError

EXIT_CLEAN, EXIT_MATCH, EXIT_ERROR = 0, 1, 2


def warn(message: str) -> None:
    print(f"streamguard: warning: {message}", file=sys.stderr)


def error(message: object) -> None:
    print(f"streamguard: error: {message}", file=sys.stderr)


def for_each_source(sources: list[str], handle: Callable[[str], None]) -> bool:
    """Run ``handle`` on every source; a failing source is reported, the others still run."""
    ok = True
    for source in sources:
        try:
            handle(source)
        except StreamguardError as exc:
            error(exc)
            ok = False
    return ok
