"""The processes a benchmark starts, and what they use, read from /proc.

CPU and memory are read per process tree (a process and every process below it), so
`streamguard run` counts with its worker processes, and nginx with its workers.
"""

import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.processes import stop

CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def started(command: list[str], log: Path, *, stop_signal: int) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group; on exit stop it with ``stop_signal`` and
    SIGKILL whatever is left of the group (spawned children never outlive the benchmark)."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
        try:
            yield process
        finally:
            stop(process, stop_signal, group=True)


def wait_until(condition: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> float:
    """Poll ``condition`` until truthy; return the seconds it took, or raise TimeoutError."""
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except OSError:
            pass  # the HTTP port may not answer yet
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval_s)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the ppid links in /proc/*/stat."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); zero once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root``'s process tree (all threads)."""
    return sum(cpu_s(pid) for pid in descendants(root))


def status_bytes(field: str, pid: int | str = "self") -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of a process, in bytes, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def process_memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS (shared pages split between the processes) of one process, in MB; zero
    once it has exited."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "Rss":
                rss += int(value.split()[0])
            elif name == "Pss":
                pss += int(value.split()[0])
    except OSError:
        pass
    return {"rss_mb": rss / 1024, "pss_mb": pss / 1024}


# /proc/PID/smaps mappings by kind. "anon" holds what glibc's malloc maps outside the
# brk heap (its arenas, blocks over the mmap threshold: decoded pictures, numpy arrays,
# FFmpeg's buffers), pymalloc's arenas and the threads' stacks, which Linux does not
# label; "heap" is the brk heap ([heap]); "file" every file-backed mapping (libraries,
# the interpreter, mapped files); "stack" the main thread's; "other" the kernel's
# ([vdso] and the like) and shared memory.
MAPPING_KINDS = ("heap", "anon", "file", "stack", "other")


def mapping_kind(name: str) -> str:
    """The kind of a mapping, from its pathname column in smaps (empty: anonymous)."""
    if not name:
        return "anon"
    if name == "[heap]":
        return "heap"
    if name == "[stack]":
        return "stack"
    if name.startswith("/") and not name.startswith(("/dev/", "/memfd:", "/SYSV")):
        return "file"
    return "other"


def mappings_mb(pid: int) -> dict[str, float]:
    """RSS of one process split by mapping kind (MAPPING_KINDS), in MB, from
    /proc/PID/smaps; zeros once it has exited. It costs 0.17-0.22 s of a `run` worker
    of 1 GB with 1,650 mappings (2 cores loaded to 25 by other work): cheap once per
    10 s sample, not for a tight loop."""
    kb = dict.fromkeys(MAPPING_KINDS, 0)
    kind = "other"
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            for line in smaps:
                if line.startswith("Rss:"):
                    kb[kind] += int(line.split()[1])
                elif "-" in line.split(maxsplit=1)[0]:  # a mapping's header line
                    fields = line.split(maxsplit=5)
                    kind = mapping_kind(fields[5].strip() if len(fields) > 5 else "")
    except OSError:
        pass
    return {f"{k}_mb": v / 1024 for k, v in kb.items()}


def tree_memory_mb(root: int) -> dict[str, float]:
    """Summed RSS and PSS of the tree, in MB."""
    tree = [process_memory_mb(pid) for pid in descendants(root)]
    return {key: sum(process[key] for process in tree) for key in ("rss_mb", "pss_mb")}


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)
