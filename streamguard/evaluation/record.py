"""A benchmark run of the evaluation, recorded with what ran it (bench/bench_quality.py):
the commit and any uncommitted change to the code it measures, the machine, and the
versions of what encodes, decodes and hashes the clips, since each can move the numbers
that BENCHMARKS.md and docs/detection-quality.md quote."""

import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pdqhash

from streamguard.evaluation.evaluate import evaluate
from streamguard.evaluation.options import Options

WATCHED = (
    "streamguard/detect",
    "streamguard/evaluation",
    "streamguard/hashing",
    "streamguard/blocklist/variants.py",
    "streamguard/ingest",
)
"""The code whose uncommitted changes would make a run's commit a lie."""


def git(repository: Path, *command: str) -> str:
    result = subprocess.run(["git", *command], cwd=repository, capture_output=True, text=True)
    return result.stdout.strip()


def machine() -> dict[str, str]:
    model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    try:
        skimage_version = importlib.metadata.version("scikit-image")
    except importlib.metadata.PackageNotFoundError:
        skimage_version = "not installed"
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return {
        "cpu": f"{os.cpu_count()} x {model.group(1) if model else '?'}",
        "memory_gib": f"{int(memory.group(1)) / 2**20:.0f}" if memory else "?",
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg_in_pyav": av.ffmpeg_version_info,
        "ffmpeg_cli": ffmpeg.split()[2] if ffmpeg else "?",
        "numpy": np.__version__,
        "pdqhash": getattr(pdqhash, "__version__", "?"),
        "scikit_image": skimage_version,
        "kernel": platform.release(),
    }


def recorded_evaluation(options: Options, command: str, repository: Path) -> dict[str, Any]:
    """``evaluate(options)`` with ``report["bench"]``: the command, the commit of
    ``repository`` and its uncommitted WATCHED files, the machine and the wall time."""
    started, commit = time.monotonic(), git(repository, "log", "-1", "--format=%h")
    uncommitted = git(repository, "status", "--short", "--", *WATCHED).splitlines()
    report = evaluate(options)
    report["bench"] = {
        "command": command.strip(),
        "commit": commit,  # the code that ran: modules are imported before this point
        "uncommitted": uncommitted,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    if git(repository, "log", "-1", "--format=%h") != commit:
        print(f"note: HEAD moved during the run; the results are for {commit}", file=sys.stderr)
    return report
