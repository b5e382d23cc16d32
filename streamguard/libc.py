"""glibc's allocator in long-running processes: how many arenas, and giving freed
memory back. Both are no-ops where libc.so.6 is not glibc's."""

import contextlib
import ctypes
import os

ARENAS_VARIABLE = "MALLOC_ARENA_MAX"
DEFAULT_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter, malloc.h


def limit_arenas() -> None:
    """Cap glibc's malloc arenas at ``MALLOC_ARENA_MAX``, 2 unless set, in this process
    and the processes it spawns.

    glibc gives threads their own arenas (up to 8 per core) and keeps what is freed in
    them. A stream's reader is a thread per connection, so with streams joining and
    leaving resident memory kept growing (bench/bench_soak.py); with 2 arenas it did not.
    """
    arenas = os.environ.setdefault(ARENAS_VARIABLE, str(DEFAULT_ARENAS))
    with contextlib.suppress(OSError, AttributeError, ValueError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, int(arenas))


def return_freed_memory() -> None:
    """Give memory freed inside the arenas back to the system (glibc keeps it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
