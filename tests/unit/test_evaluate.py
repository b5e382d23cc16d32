"""The pure parts of ``streamguard eval``: transforms, distances, thresholds, the report."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prometheus_client.metrics import MetricWrapperBase

from streamguard.cli.eval_cmd import options_of
from streamguard.cli.main import build_parser
from streamguard.cli.options import thresholds as parse_thresholds
from streamguard.detect.matcher import FrameMatcher
from streamguard.evaluation import quality, record, redteam
from streamguard.evaluation.corpus import Encoding, Picture, directory_pictures, keyframes
from streamguard.evaluation.entries import (
    NO_HASH,
    EntrySet,
    min_distances,
    owner_of,
    picture_entries,
)
from streamguard.evaluation.methods import BY_METHOD, METHODS, PROBES
from streamguard.evaluation.observation import Evaluation
from streamguard.evaluation.options import Options
from streamguard.evaluation.summary import summarise, zero_fp_threshold
from streamguard.evaluation.transforms import BY_NAME, TRANSFORMS, native_size, random_crop
from streamguard.hashing.borders import content_box
from streamguard.hashing.picture import load_picture
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.sampler import Frame
from streamguard.observability import metrics

from ..conftest import SAMPLES

RNG_SEED = 3
PICTURE = np.asarray(Image.open(SAMPLES / "flagged" / "flagged_01.png").convert("RGB"))  # 1280x720
SQUARE = np.ascontiguousarray(PICTURE[:, 280:1000])  # 720x720


def render(name: str, picture: np.ndarray = PICTURE, seed: int = RNG_SEED) -> np.ndarray:
    return BY_NAME[name].render(picture, np.random.default_rng(seed))


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb.mean(axis=2), np.uint8)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.name)
def test_every_transform_gives_an_even_rgb_frame_and_is_deterministic(transform):
    for picture in (PICTURE, SQUARE):
        frame = transform.render(picture, np.random.default_rng(RNG_SEED))
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0
        assert 360 <= frame.shape[0] <= 1080 and frame.shape[1] <= 1920
        again = transform.render(picture, np.random.default_rng(RNG_SEED))
        assert np.array_equal(frame, again)


def test_sizes_keep_the_aspect_unless_stretched():
    assert native_size((512, 512)) == (720, 720)
    assert native_size((400, 600), 360) == (540, 360)
    assert native_size((100, 1000)) == (1920, 192)  # capped at 1920 wide
    assert render("scale-1080p").shape == (1080, 1920, 3)
    assert render("scale-360p", SQUARE).shape == (360, 360, 3)
    assert render("stretch-4:3").shape == (720, 960, 3)
    assert render("stretch-16:9", SQUARE).shape == (720, 1280, 3)
    assert render("rot90").shape == (720, 404, 3)  # turned to 720x1280, then 720 high
    assert np.array_equal(render("flip", SQUARE), SQUARE[:, ::-1])


@pytest.mark.parametrize(
    ("name", "picture", "box"),
    [
        ("letterbox", PICTURE, (90, 630, 0, 960)),  # picture 960x540 in 960x720
        ("pillarbox", SQUARE, (0, 720, 120, 840)),  # picture 720x720 in 960x720
        ("fit-16:9", SQUARE, (0, 720, 280, 1000)),
    ],
)
def test_bars_are_where_the_transform_put_them(name, picture, box):
    frame = render(name, picture)
    top, bottom, left, right = box
    assert (frame[:top] == 0).all() and (frame[bottom:] == 0).all()
    assert (frame[:, :left] == 0).all() and (frame[:, right:] == 0).all()
    assert content_box(grey(frame)) == box


def test_padding_is_one_solid_colour_20_percent_per_side():
    frame = render("pad-20%", SQUARE)
    assert frame.shape[:2] == (718, 718)  # a 514 px picture, 102 px (20%) on each side
    border = np.concatenate([frame[:102].reshape(-1, 3), frame[-102:].reshape(-1, 3)])
    assert (border == border[0]).all() and not (border[0] == 0).all()
    top, bottom, left, right = content_box(grey(frame))
    assert (top, 718 - bottom, left, 718 - right) == (102, 102, 102, 102)


def test_crops_remove_what_they_say():
    assert render("crop-10%-centre").shape[:2] == (720, 1280)  # same aspect after 5% per side
    sides = {render("crop-10%-side", SQUARE, seed).shape[:2] for seed in range(8)}
    assert sides == {(720, 648), (720, 800)}  # 10% off left/right or top/bottom, 720 high
    corner = render("crop-5%-corner", SQUARE)
    assert corner.shape[:2] == (720, 720)


def test_overlays_change_part_of_the_frame_only():
    plain = render("scale-720p")
    for name, at_most in (("text", 0.35), ("caption", 0.2), ("logo", 0.1)):
        changed = (np.abs(render(name).astype(int) - plain).max(axis=2) > 8).mean()
        assert 0.005 < changed < at_most, name
    caption = render("caption")
    assert caption[-50:].mean() < plain[-50:].mean()  # the bar darkens the bottom


def test_pip_puts_the_picture_at_half_size_on_a_backdrop():
    frame = render("pip-50%")
    assert frame.shape == (720, 1280, 3)
    half = PICTURE[::2, ::2].astype(int)
    corners = [frame[24:384, 24:664], frame[24:384, -664:-24], frame[-384:-24, 24:664]]
    corners.append(frame[-384:-24, -664:-24])
    assert min(np.abs(c.astype(int) - half).mean() for c in corners) < 6


def test_small_rotation_leaves_black_corners():
    frame = render("rot-4deg")
    assert frame.shape == (720, 1280, 3)
    assert (frame[0, 0] == 0).all() and (frame[-1, -1] == 0).all()


def test_random_crops_have_the_asked_size_and_differ():
    rng = np.random.default_rng(1)
    crops = [random_crop(PICTURE, rng, 640, 360) for _ in range(3)]
    assert all(c.shape == (360, 640, 3) for c in crops)
    assert not np.array_equal(crops[0], crops[1])


def test_min_distances_per_picture_and_which_frame_code():
    entries = EntrySet(
        [],
        np.array([[0b1111, 0], [0, 0], [0xFF, 0xFF]], np.uint8),
        np.array([0, 0, 2]),
    )
    frame = np.array([[0b0001, 0], [0xFF, 0xFE]], np.uint8)
    best, which, entry = min_distances(frame, entries, 4)
    assert best.tolist() == [1, NO_HASH, 1, NO_HASH]  # picture 0: code 0 vs entry [0, 0]
    assert which.tolist() == [0, -1, 1, -1]
    assert entry.tolist() == [1, -1, 2, -1]
    empty, _, _ = min_distances(np.zeros((0, 2), np.uint8), entries, 4)
    assert (empty == NO_HASH).all()


def test_zero_fp_threshold_is_just_below_the_closest_negative():
    assert zero_fp_threshold(40, 256) == 39
    assert zero_fp_threshold(0, 256) == -1  # a negative at distance 0: no threshold is clean
    assert zero_fp_threshold(NO_HASH, 64) == 64


def test_thresholds_parse_and_refuse_nonsense():
    assert parse_thresholds("pdq=31,phash=10") == {"pdq": 31, "phash": 10}
    assert parse_thresholds("pdq=128,dhash=32") == {"pdq": 128, "dhash": 32}
    for bad in ("pdq", "md5=3", "phash=65", "pdq=-1", "phash=33", "pdq=129"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_thresholds(bad)


def test_reports_go_under_the_current_directory_by_default():
    args = build_parser().parse_args(["eval"])
    assert args.output == Path("streamguard-eval") and options_of(args).output == args.output


def test_owner_comes_from_the_entry_id_as_add_image_writes_it():
    names = {"a-b": 0, "c": 1}
    assert owner_of("a-b-pdq", names) == 0
    assert owner_of("a-b-phash~crop10", names) == 0
    assert owner_of("c-dhash~left5", names) == 1


def test_entries_from_images_are_add_images_variants():
    (picture,) = [p for p in directory_pictures(SAMPLES / "flagged", entry=True)][:1]
    hashes_only = picture_entries(picture, "pdq", variants=False)
    assert [e.id for e in hashes_only] == ["flagged_01-pdq"]
    variants = picture_entries(picture, "pdq", variants=True)
    assert variants[0].digest == hashes_only[0].digest
    assert {e.id.split("~")[1] for e in variants[1:]} >= {"crop5", "left10"}
    assert "flagged_01-pdq~mirror" not in {e.id for e in variants}  # PDQ flips by itself
    assert "flagged_01-phash~mirror" in {e.id for e in picture_entries(picture, "phash", True)}


@pytest.fixture(scope="module")
def small_report():
    """Two entries and a negative, looked at directly (no encoding): the aggregation."""
    pictures = [
        *directory_pictures(SAMPLES / "flagged", entry=True)[:2],
        *directory_pictures(SAMPLES / "images", entry=False)[:1],
    ]
    evaluation = Evaluation(pictures, Options(), Encoding())
    for picture in pictures:
        number = evaluation.number(picture)
        for name in ("scale-720p", "flip", "pip-50%"):
            stream = evaluation.new_stream("item", number, name, picture.entry)
            rgb = render(name, picture.rgb)
            # The picture's own grey, so the unchanged one is only the frame path's PDQ
            # drift (640 px pre-scale) from add-image's reference hash away.
            pixels = load_picture(picture.path).luma.pixels if name == "scale-720p" else grey(rgb)
            for rep in range(2 if picture.entry else 1):
                frame = Frame("s", rep * 2.0, 0.0, Luma(pixels), pixels.shape[1], pixels.shape[0])
                evaluation.observe(frame, stream, rep, rep * 2.0)
            evaluation.finish(stream)
    return summarise(evaluation, "test", [], {"item frames": 10}, {"total_s": 1.0})


def test_report_aggregates_recall_negatives_and_decisions(small_report):
    methods = small_report["methods"]
    assert small_report["counts"]["positive_trials_per_transform"] == 2
    plain, robust = methods["plain-pdq"]["transforms"], methods["sg-pdq"]["transforms"]
    assert plain["scale-720p"]["recall"] == 1.0 and 0 <= plain["scale-720p"]["p50"] <= 10
    assert plain["flip"]["recall"] == 0.0 and robust["flip"]["recall"] == 1.0
    assert robust["flip"]["found_through"] in ({"flipy": 2}, {"flipx": 2})
    assert plain["scale-720p"]["policy"] == {"kill_first_keyframe": 2}
    assert robust["flip"]["policy"] == {"kill_second_keyframe": 2}  # widened: two frames
    assert plain["pip-50%"]["policy"] == {"missed": 2}
    assert BY_METHOD["sg-pdq"].robustness.dihedral and not BY_METHOD["plain-pdq"].variants
    # 3 transforms of 2 entries (2 keyframes each) and of 1 negative (1 keyframe): 15
    # frames, each against the entries of the other pictures: 12 x 1 + 3 x 2.
    assert small_report["counts"]["frames"] == 15
    assert small_report["counts"]["negative_comparisons"] == 18
    assert all(m["fp_pairs"] == 0 and not m["false_decisions"] for m in methods.values())
    assert small_report["consistency"]["mismatches"] == 0
    assert set(small_report["probes"]) == {p.key for p in PROBES}
    targets = {t["method"]: t for t in small_report["targets"]}
    assert targets["sg-pdq"]["worst_recall"] is not None


def test_markdown_and_files(small_report, tmp_path, monkeypatch):
    text = quality.markdown(small_report)
    assert "## Recall at the configured thresholds" in text
    assert "| flip | 0.0% |" in text and "**FAIL**" in text  # untested rows count as 0
    json_path, md_path, plots = quality.write_report(small_report, tmp_path)
    assert json_path.exists() and md_path.read_text() == text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert plots is None
    else:
        assert plots and all(p.stat().st_size > 10_000 for p in plots)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert quality.write_plots(small_report, tmp_path / "none") is None


def test_a_recorded_run_is_headed_by_what_ran_it(small_report):
    bench = {
        "command": "python -m bench.bench_quality --docs",
        "commit": "abc1234",
        "uncommitted": [" M streamguard/ingest/feed.py"],
        "date": "2026-01-01 00:00 UTC",
        "machine": record.machine(),
        "wall_s": 240.0,
    }
    timings = small_report["timings_s"] | {"cpu_s": 220.0}
    recorded = small_report | {"bench": bench, "timings_s": timings}
    first, blank, title = quality.markdown(recorded).splitlines()[:3]
    assert first.startswith(
        "`python -m bench.bench_quality --docs`: commit abc1234 "
        "(uncommitted: streamguard/ingest/feed.py), 2026-01-01 00:00 UTC, 4.0 min wall "
        "(3.7 min CPU in the evaluating process). Machine: "
    )
    assert blank == "" and title == "# Detection quality"


def service_metrics() -> dict[tuple[str, tuple], float]:
    """Every value of the service's Prometheus metrics in this process (not the creation
    times: a label's first use adds one, which the values show anyway)."""
    wrappers = (m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for wrapper in wrappers
        for metric in wrapper.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_evaluation_leaves_the_services_metrics_alone(tmp_path):
    """The harness runs the production sampler and matcher on clips it makes; what they
    count must not show in the metrics of a service in the same process."""
    pictures = [
        *directory_pictures(SAMPLES / "flagged", entry=True)[:1],
        *directory_pictures(SAMPLES / "images", entry=False)[:1],
    ]
    evaluation = Evaluation(pictures, Options(), Encoding())
    items = [
        (evaluation.new_stream("item", evaluation.number(p), "scale-720p", p.entry), p.rgb)
        for p in pictures
    ]
    before = service_metrics()
    assert evaluation.run_items(items, "std", lambda s: 2 if s.positive else 1, tmp_path) == 3
    blocklist = evaluation.matchers["sg-pdq"].blocklist
    clip = SAMPLES / "clips" / "flagged_720p.mp4"
    assert redteam.first_match_s(clip, FrameMatcher(blocklist, metered=False), seed=1) <= 4.0
    assert evaluation.matcher_calls and not evaluation.mismatches
    assert service_metrics() == before
    # The same steps in production are counted: the comparison above would see them.
    frame = next(frames for frames in keyframes(clip, "demo") if frames.pts_s == 4.0)
    assert FrameMatcher(blocklist)(frame)
    assert service_metrics() != before


def test_methods_have_distinct_names_and_one_robustness_each():
    assert len(BY_METHOD) == len(METHODS)
    for method in METHODS:
        assert len({(p.robust, p.variants) for p in method.probes}) == 1, method.name


def test_percentages():
    assert quality.percent(1.0) == "100%"
    assert quality.percent(21 / 22) == "95.5%"
    assert quality.percent(None) == "-"


def test_pictures_need_distinct_names(tmp_path):
    from streamguard.evaluation.pictures import check_pictures

    rgb = np.asarray(PICTURE)
    pictures = [
        Picture("a", SAMPLES / "flagged" / "flagged_01.png", rgb, True),
        Picture("a", SAMPLES / "flagged" / "flagged_01.png", rgb, True),
    ]
    assert [p.name for p in check_pictures(pictures, print)] == ["a", "a.2"]
