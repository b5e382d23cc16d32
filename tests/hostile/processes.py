"""`streamguard` as a real process, with the peak memory the kernel measured for it."""

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .media import BLOCKLIST

# A scan of the sample clips peaks at 100-250 MB; believing a declared 16000x16000 picture
# took 2.3 GB before FFmpeg's probing was kept from decoding (streamguard/ingest/source.py).
MEMORY_BOUND_MB = 600


@dataclass
class Finished:
    code: int
    out: str
    err: str
    peak_mb: float  # the process's peak resident set (VmHWM), from wait4()

    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("streamguard: error: ")]


def streamguard(*args: str | Path, timeout_s: float = 60) -> Finished:
    """Run ``python -m streamguard ARGS`` to its end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "streamguard", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    streams: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda n=name, f=pipe: streams.__setitem__(n, f.read()))
        for name, pipe in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)  # reaps it: Popen must not wait again
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    assert process.returncode != -9, f"streamguard {args} did not finish within {timeout_s} s"
    return Finished(
        process.returncode,
        streams["out"].decode(errors="replace"),
        streams["err"].decode(errors="replace"),
        usage.ru_maxrss / 1024,
    )


def scan(*sources: str | Path, options: tuple[str, ...] = (), timeout_s: float = 60) -> Finished:
    return streamguard("scan", "--blocklist", BLOCKLIST, *options, *sources, timeout_s=timeout_s)


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")
