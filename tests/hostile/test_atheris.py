"""atheris (coverage-guided, libFuzzer) on the parsers of untrusted input, briefly.

Each target of atheris_targets.py runs as its own process for a few seconds from its
seed corpus, one after another (about 45 s on 2 cores). A crash fails the test with
the input and the traceback. For a longer search, by hand:
``python -m tests.hostile.atheris_targets blocklist -max_total_time=600``.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .atheris_targets import REPO, TARGETS

SECONDS = {"blocklist": 16, "kill": 6, "control": 8, "webhook": 6}  # the parsers' sizes
LIMITS = ["-rss_limit_mb=1024", "-timeout=5", "-print_final_stats=1"]


def findings(directory: Path) -> str:
    """The inputs libFuzzer saved (crash-, timeout-, oom-…), for the failure message."""
    return "\n".join(f"{p.name}: {p.read_bytes()!r}" for p in sorted(directory.iterdir()))


@pytest.mark.parametrize("target", list(TARGETS))
def test_atheris_finds_nothing(target: str, tmp_path: Path) -> None:
    assert importlib.util.find_spec("atheris"), "atheris is missing: pip install -e '.[test]'"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        *(sys.executable, "-m", "tests.hostile.atheris_targets", target),
        f"-max_total_time={SECONDS[target]}",
        *LIMITS,
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # seeds and scratch files
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # atheris prints the traceback on stdout
        text=True,
        errors="replace",
        timeout=SECONDS[target] + 60,
    )
    log = "\n".join(
        line for line in result.stdout.splitlines() if not line.startswith("INFO: Instrumenting")
    )
    saved = findings(artifacts)
    assert result.returncode == 0 and not saved, f"{saved}\n{log[-6000:]}"
    assert "Done " in log, log[-2000:]  # libFuzzer ran to its time limit
