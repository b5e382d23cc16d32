"""The benchmarks of BENCHMARKS.md, run from the repository root: ``python -m bench.bench_live``.

A package, so the benchmarks import their shared helpers and tests/support (the servers
the integration tests start) without editing ``sys.path``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # results, and the work directories of the live benchmarks
