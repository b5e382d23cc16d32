"""``streamguard eval --quick``: real H.264 encodes of the sample pictures, read back through
the production sampler and matcher, and the report it writes."""

import json

import pytest

from ..support.cli import streamguard

pytestmark = pytest.mark.integration

REENCODE_AND_SCALE = ("reencode-4M", "reencode-400k", "scale-360p", "scale-720p", "scale-1080p")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("eval")
    result = streamguard("eval", "--quick", "--output", str(output), timeout_s=300)
    assert result.returncode == 0, result.stderr
    return output, result


def test_plain_reencodes_and_scales_are_all_found(quick_run):
    output, _ = quick_run
    report = json.loads((output / "quality.json").read_text())
    for method in ("plain-pdq", "plain-phash", "sg-pdq", "sg-pdq-img"):
        results = report["methods"][method]["transforms"]
        for transform in REENCODE_AND_SCALE:
            assert results[transform]["recall"] == 1.0, (method, transform)
            assert results[transform]["n"] == 4  # streamguard/samples/flagged
    assert report["methods"]["plain-pdq"]["transforms"]["reencode-4M"]["p90"] <= 16


def test_the_robust_matcher_recovers_what_plain_pdq_misses(quick_run):
    output, _ = quick_run
    methods = json.loads((output / "quality.json").read_text())["methods"]
    for transform in ("flip", "rot90", "pillarbox", "pad-20%"):
        assert methods["plain-pdq"]["transforms"][transform]["recall"] == 0.0, transform
        assert methods["sg-pdq"]["transforms"][transform]["recall"] == 1.0, transform
    # Crops need entries made from the image; a flip kills only on a second keyframe.
    assert methods["sg-pdq"]["transforms"]["crop-10%-centre"]["recall"] == 0.0
    assert methods["sg-pdq-img"]["transforms"]["crop-10%-centre"]["recall"] == 1.0
    assert methods["sg-pdq"]["transforms"]["flip"]["policy"] == {"kill_second_keyframe": 4}


def test_negatives_cover_other_pictures_crops_and_footage_without_false_positives(quick_run):
    output, _ = quick_run
    report = json.loads((output / "quality.json").read_text())
    counts = report["counts"]
    assert counts["crop frames"] > 0 and counts["footage frames"] > 0
    assert counts["negative_comparisons"] > counts["frames"]
    for name in ("plain-pdq", "sg-pdq", "sg-pdq-img", "sg-pdq-phash-img"):
        method = report["methods"][name]
        assert method["fp_pairs"] == 0 and not method["false_decisions"], name
        assert method["zero_fp_threshold"] is None or method["zero_fp_threshold"] >= 31
    assert report["consistency"]["mismatches"] == 0  # FrameMatcher == brute force
    assert {p.split("/")[0] for p in report["probes"]} == {"pdq", "phash", "dhash"}


def test_markdown_json_and_plots_are_written(quick_run):
    output, result = quick_run
    markdown = (output / "quality.md").read_text()
    assert "## Recall at the configured thresholds" in markdown and "## Targets" in markdown
    assert "| reencode-4M | 100% | 100% |" in markdown
    assert markdown.strip() in result.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not list(output.glob("*.png"))
        assert "matplotlib is not installed" in result.stderr
    else:
        assert (output / "detection_quality.png").stat().st_size > 10_000
        assert (output / "detection_quality_distances.png").stat().st_size > 10_000


def test_bad_thresholds_are_a_one_line_usage_error(tmp_path):
    result = streamguard("eval", "--thresholds", "pdq=300")
    assert result.returncode == 2
    assert "pdq=300" in result.stderr and "Traceback" not in result.stderr


def test_adversarial_suite_decides_every_case(tmp_path):
    """``eval --adversarial --quick``: every case through the production path, in real time,
    as decided as expected; the report says so (exit 0), with the time to each decision."""
    output = tmp_path / "out"
    command = ["eval", "--adversarial", "--quick", "--trials", "3", "--output", str(output)]
    result = streamguard(*command, timeout_s=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((output / "adversarial.json").read_text())
    cases = {case["case"]: case for case in report["cases"]}
    assert set(cases) == {"dodge-97", "long-gop-10s", "stall-burst", "oversize", "unwatchable"}
    assert all(case["passed"] for case in cases.values()), cases
    assert cases["long-gop-10s"]["decision_s"] <= 2.0 + 1.0
    assert cases["unwatchable"]["decision"] == "review"
    assert "| stall-burst |" in (output / "adversarial.md").read_text()
