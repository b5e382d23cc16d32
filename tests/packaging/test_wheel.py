"""The wheel, installed: ``streamguard demo`` and ``streamguard eval --quick`` find the
samples they need through the installed package, run from a directory that is not the
checkout, with no path back to it (issue 16).

The wheel is built from a copy of what deploy/Dockerfile builds from, without network
(``--no-build-isolation``: the running interpreter's setuptools), and installed alone
into a fresh venv; a .pth file lends that venv the running interpreter's site-packages
for the dependencies, which are not what is tested. About 40 s, most of it eval --quick.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NEEDED = (  # what demo, eval --quick and eval --adversarial read (samples/README.md)
    "blocklist.csv",
    "clips/flagged_720p.mp4",
    "clips/clean_720p.mp4",
    "clips/clean_360p.flv",
    "flagged/flagged_01.png",
    "images/control_01.png",
)
WHERE = (
    "import json, streamguard, streamguard.samples as s; "
    "print(json.dumps([streamguard.__file__, str(s.SAMPLES_DIR)]))"
)


def clean_environment() -> dict[str, str]:
    """This environment without PYTHONPATH and the other PYTHON* variables."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this checkout installed, and nothing else of its own."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source)
    shutil.copytree(
        REPO / "streamguard", source / "streamguard", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    offline = ["-q", "--no-deps", "--no-index"]
    run([*pip, "wheel", *offline, "--no-build-isolation", "-w", str(root / "dist"), str(source)])
    (wheel,) = (root / "dist").glob("streamguard-*.whl")
    assert wheel.stat().st_size < 6_000_000  # the samples are ~3.7 MB

    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([*pip, "--python", str(python), "install", *offline, str(wheel)])
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv}))
    lent = [p for p in sys.path if Path(p).name == "site-packages"]
    (site_packages / "dependencies.pth").write_text("\n".join(lent) + "\n")
    return venv


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture(scope="module")
def demo_and_eval(venv, elsewhere):
    """``streamguard demo`` (real time, ~10 s) while ``streamguard eval --quick`` runs."""
    streamguard = str(venv / "bin" / "streamguard")
    options = {"cwd": elsewhere, "env": clean_environment()}
    demo = subprocess.Popen(
        [streamguard, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    )
    try:
        evaluation = run([streamguard, "eval", "--quick"], timeout=300, **options)
        out, err = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == 0, out + err
    return (out, err), evaluation


def test_streamguard_and_its_samples_come_from_the_venv(venv, elsewhere):
    python = str(venv / "bin" / "python")
    result = run([python, "-c", WHERE], cwd=elsewhere, env=clean_environment())
    module, samples = (Path(p) for p in json.loads(result.stdout))
    assert module.is_relative_to(venv) and samples.is_relative_to(venv)
    assert not module.is_relative_to(REPO)
    for name in NEEDED:
        assert (samples / name).is_file(), name


def test_demo_detects_the_flagged_stand_in(demo_and_eval):
    (out, err), _ = demo_and_eval
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["stream_id"] == "demo" and event["action"] == "kill"
    assert event["match"]["entry_id"].startswith("flagged_01-")
    assert "matched 'stand-in flagged image 01" in err


def test_eval_quick_reports_under_the_current_directory(demo_and_eval, elsewhere):
    _, evaluation = demo_and_eval
    report = json.loads((elsewhere / "streamguard-eval" / "quality.json").read_text())
    corpus = report["corpus"]
    assert corpus["positives"] == [f"flagged_0{n}" for n in range(1, 5)]
    assert {"clean_720p", "clean_360p"} <= {clip["name"] for clip in corpus["footage"]}
    assert (elsewhere / "streamguard-eval" / "quality.md").read_text() in evaluation.stdout


def test_the_installed_api_serves_its_openapi_document(venv, elsewhere):
    """``streamguard api`` from the wheel: its document is package data, not a checkout's."""
    python = str(venv / "bin" / "python")
    read = (
        "import json; from streamguard.api.app import OPENAPI; "
        "print(json.loads(OPENAPI)['openapi'])"
    )
    result = run([python, "-c", read], cwd=elsewhere, env=clean_environment())
    assert result.stdout.strip() == "3.1.0"
