"""What every benchmark's report states: its command, commit and machine, and its figures
as percentiles and Markdown tables.

One module, so that the sections of BENCHMARKS.md describe their runs alike and a figure
reads the same in every table.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import redis

from bench import ROOT


def _output(command: list[str], stderr: bool = False) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stderr if stderr else done.stdout).strip()


def _redis_server() -> str:
    words = _output(["redis-server", "--version"]).split()
    return words[2].removeprefix("v=") if len(words) > 2 else "?"


# The versions a report may name besides the machine's, by key.
VERSIONS: dict[str, Callable[[], str]] = {
    "pyav": lambda: av.__version__,
    "numpy": lambda: np.__version__,
    "redis_py": lambda: redis.__version__,
    "nginx": lambda: _output(["nginx", "-v"], stderr=True).removeprefix("nginx version: "),
    "redis": _redis_server,
}


def machine(*versions: str) -> dict[str, str]:
    """CPU, memory, Python and kernel, and the versions of ``versions`` (keys of VERSIONS)."""
    model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    return {
        "cpu": f"{os.cpu_count()} x {model.group(1) if model else '?'}",
        "memory_gib": f"{int(memory.group(1)) / 2**20:.0f}" if memory else "?",
        "python": platform.python_version(),
        "kernel": platform.release(),
        **{name: VERSIONS[name]() for name in versions},
    }


def invocation() -> str:
    """How this benchmark was started, as BENCHMARKS.md quotes it."""
    return " ".join(["python -m", sys.modules["__main__"].__spec__.name, *sys.argv[1:]])


def header(args: argparse.Namespace, *versions: str) -> dict[str, Any]:
    """What a run's results start with: its command, date, machine (with ``versions``) and
    options."""
    return {
        "command": invocation(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(*versions),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def commit() -> str:
    """The checkout's short commit hash."""
    return _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])


def percentiles(
    values: list[float], scale: float = 1.0, digits: int = 3
) -> dict[str, float | int | None]:
    """count, min, p50, p95, p99, max (times ``scale``, rounded to ``digits``); None
    without values."""
    if not values:
        return {"count": 0, "min": None, "p50": None, "p95": None, "p99": None, "max": None}
    array = np.asarray(values) * scale
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    found = {"min": array.min(), "p50": p50, "p95": p95, "p99": p99, "max": array.max()}
    return {"count": len(values), **{k: round(float(v), digits) for k, v in found.items()}}


def fmt(value: Any) -> str:
    """A table cell: "-" for None, three significant digits below 1, thousands separated."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) < 1:
            return f"{value:.3g}"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return lines + ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]


def verdict(ok: bool | None) -> str:
    """A target's result cell: "-" when it was not measured."""
    return "-" if ok is None else ("**PASS**" if ok else "**FAIL**")


def save(out: Path, name: str, results: dict[str, Any], markdown: str) -> None:
    """``out/name.json``, every figure (what ``--render`` reads back), and ``out/name.md``,
    the section for BENCHMARKS.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown)


def saved(out: Path, name: str) -> dict[str, Any]:
    """The figures ``save`` wrote to ``out/name.json``: what ``--render`` reads back."""
    return json.loads((out / f"{name}.json").read_text())


def publish(
    args: argparse.Namespace,
    name: str,
    results: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], None] | None = None,
) -> None:
    """A benchmark's report: ``save`` in ``--out`` (with ``--render``, only ``name``.md:
    the JSON is what ``results`` was read from), the PNG ``--plot`` asks for where the
    benchmark draws one, and the Markdown on stdout."""
    text = markdown(results)
    if args.render:
        (args.out / f"{name}.md").write_text(text)
    else:
        save(args.out, name, results, text)
    if plot is not None and args.plot:
        plot(results, args.plot)
    print(text)
