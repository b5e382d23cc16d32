"""glibc's allocator in long-running processes (how many arenas, when large blocks are
mapped, giving freed memory back), and Linux's parent-death signal. No-ops where
libc.so.6 is not glibc's."""

import contextlib
import ctypes
import os
import signal

# mallopt parameters (malloc.h) and the environment variables glibc reads at start.
_TUNING = {
    "MALLOC_ARENA_MAX": (-8, 2),  # M_ARENA_MAX
    "MALLOC_MMAP_THRESHOLD_": (-3, 1024 * 1024),  # M_MMAP_THRESHOLD, in bytes
}


def tune_malloc() -> None:
    """Set glibc's arena count and mmap threshold, unless the environment already does,
    in this process and in the worker processes it spawns (they inherit the variables).

    Measured with bench/bench_soak.py (30 streams joining and leaving, 4 min): by default
    resident memory grew 417 MB/h. Threads keep what they free in their own arenas (up
    to 8 per core): 2 arenas. glibc raises its mmap threshold as large blocks are freed,
    so decoded pictures end up in the arenas and fragment them; fixed at 1 MiB, growth
    was 201 MB/h at the same CPU (128 KiB: 69 MB/h, but 30 % more CPU).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        for variable, (parameter, default) in _TUNING.items():
            value = os.environ.setdefault(variable, str(default))
            with contextlib.suppress(ValueError):
                libc.mallopt(parameter, int(value))


def return_freed_memory() -> None:
    """Give memory freed inside the arenas back to the system (glibc keeps it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


_PR_SET_PDEATHSIG = 1  # prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the process that started it (``parent_pid``)
    dies, however it dies (SIGKILL, the OOM killer): a worker left behind would keep
    watching its streams and publishing, beside the next instance's. SIGKILL, not SIGTERM:
    what a worker decided is in its durable outbox, which the next instance adopts, so
    nothing is lost by ending it at once. The parent may have died already, before the
    request: then this process ends now."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)
