"""The benchmarks of BENCHMARKS.md, run from the repository root: ``python -m bench.bench_live``.

A package, so the benchmarks import their shared helpers and tests/support (the servers
the integration tests start) without editing ``sys.path``.
"""

import argparse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # results, and the work directories of the live benchmarks


def parse(
    parser: argparse.ArgumentParser, smoke: dict[str, Any], results: str = ""
) -> argparse.Namespace:
    """The command line, and ``--smoke``: the options in ``smoke`` replaced, so the whole
    code path runs on tiny sizes in seconds. CI runs every benchmark so
    (tests/integration/test_bench_smoke.py), so none goes stale; its figures mean nothing.

    For a benchmark that writes ``results``.json and ``results``.md, also ``--out``, where
    they and its work files go, and ``--render``, which only rewrites the Markdown from
    the JSON (after a change to the report, without measuring again).
    """
    if results:
        parser.add_argument(
            "--out", type=Path, default=OUT, help=f"{results}.json, {results}.md, work files"
        )
        parser.add_argument(
            "--render", action="store_true", help=f"only rewrite {results}.md from {results}.json"
        )
    parser.add_argument(
        "--smoke", action="store_true", help="the whole code path on tiny sizes (CI check)"
    )
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(smoke)
    return args
