"""The detection-quality report of ``streamguard eval``: Markdown, JSON and plots."""

import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

SHORT = {
    "plain-pdq": "plain PDQ",
    "plain-phash": "plain pHash",
    "sg-pdq": "sg PDQ, hashes",
    "sg-pdq-img": "sg PDQ, images",
    "sg-pdq-phash": "sg PDQ+pHash, hashes",
    "sg-pdq-phash-img": "sg PDQ+pHash, images",
    "sg-all-img": "sg all, images",
}
"""Column names: "sg" is streamguard's matcher (bars removed, PDQ in 8 orientations);
"hashes" are hash-only entries, "images" entries made from the images (with variants)."""

PLOTTED = ("plain-pdq", "plain-phash", "sg-pdq", "sg-pdq-phash", "sg-pdq-img", "sg-pdq-phash-img")
POLICY = ("plain-pdq", "sg-pdq", "sg-pdq-phash", "sg-pdq-img", "sg-pdq-phash-img", "sg-all-img")
MISSES = ("plain-pdq", "sg-pdq", "sg-pdq-phash", "sg-pdq-img", "sg-pdq-phash-img", "sg-all-img")


def percent(value: float | None) -> str:
    if value is None:
        return "-"
    return "100%" if value == 1 else f"{100 * value:.1f}%"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], right_from: int = 1
) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return [_row(header), _row(align), *(_row(r) for r in rows)]


def _distance(value: int | None) -> str:
    return "-" if value is None else ("no hash" if value >= 9999 else str(value))


def _bench_header(report: dict[str, Any]) -> str:
    """What ran a recorded run (record.py), in one paragraph."""
    bench = report["bench"]
    m = bench["machine"]
    dirty = ", ".join(line.split(maxsplit=1)[1] for line in bench["uncommitted"]) or "none"
    return (
        f"`{bench['command']}`: commit {bench['commit']} (uncommitted: {dirty}), "
        f"{bench['date']}, {bench['wall_s'] / 60:.1f} min wall "
        f"({report['timings_s']['cpu_s'] / 60:.1f} min CPU in the evaluating process). "
        f"Machine: {m['cpu']}, {m['memory_gib']} GiB, Python {m['python']}, PyAV {m['pyav']} "
        f"(FFmpeg {m['ffmpeg_in_pyav']}), ffmpeg {m['ffmpeg_cli']}, numpy {m['numpy']}, "
        f"scikit-image {m['scikit_image']}."
    )


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, headed by what ran it if it was recorded (record.py)."""
    lines = [_bench_header(report), ""] if "bench" in report else []
    lines += _intro(report)
    for section in SECTIONS:
        lines += ["", *section(report)]
    lines += ["", _production_check(report), ""]
    return "\n".join(lines)


def _thresholds(report: dict[str, Any]) -> str:
    return ", ".join(f"{a} ≤ {t}" for a, t in report["settings"]["thresholds"].items())


def _heading(title: str, *paragraphs: str) -> list[str]:
    """A section's title and the paragraphs before its table, each followed by a blank."""
    lines = [f"## {title}", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    return lines


def _intro(report: dict[str, Any]) -> list[str]:
    counts, corpus = report["counts"], report["corpus"]
    return [
        "# Detection quality",
        "",
        f"Corpus: {corpus['source']}: {len(corpus['positives'])} positive pictures (entries), "
        f"{len(corpus['negative_only'])} negative-only pictures, "
        f"{corpus['footage_seconds'] / 60:.1f} min of benign footage. "
        f"{counts['frames']:,} decoded keyframes; {counts['negative_comparisons']:,} negative "
        f"comparisons (frame x entry of another picture) over "
        f"{counts['negative_frames']:,} frames.",
        "",
        f"Thresholds: {_thresholds(report)}. Recall is over the "
        f"{counts['positive_trials_per_transform']} positive pictures per "
        "transform, on the first keyframe showing each. Columns: `sg` = streamguard's "
        "matcher (bars removed, PDQ in 8 orientations); `hashes` = one hash-only entry per "
        "picture; `images` = entries made from the image with its variants "
        "(`blocklist add-image --variants`).",
    ]


def _recall(report: dict[str, Any]) -> list[str]:
    methods = report["methods"]
    rows = [
        [t["name"], *(percent(methods[m]["transforms"][t["name"]]["recall"]) for m in methods)]
        for t in report["transforms"]
    ]
    header = ["transform", *(SHORT.get(m, m) for m in methods)]
    return [*_heading("Recall at the configured thresholds"), *_table(header, rows)]


def _recall_zero_fp(report: dict[str, Any]) -> list[str]:
    methods = report["methods"]
    single = [m for m in methods if methods[m]["zero_fp_threshold"] is not None]
    header = [f"{SHORT.get(m, m)} (≤ {methods[m]['zero_fp_threshold']})" for m in single]
    rows = [
        [
            t["name"],
            *(percent(methods[m]["transforms"][t["name"]]["recall_zero_fp"]) for m in single),
        ]
        for t in report["transforms"]
    ]
    return [
        *_heading(
            "Recall at each method's zero-false-positive threshold",
            "The largest threshold at which no negative comparison matches "
            "(single-algorithm methods).",
        ),
        *_table(["transform", *header], rows),
    ]


def _negatives(report: dict[str, Any]) -> list[str]:
    counts = report["counts"]
    rows = [_negatives_row(m, result) for m, result in report["methods"].items()]
    header = [
        "method",
        "entries",
        "closest negative",
        "zero-FP threshold",
        "FP pairs at threshold",
        "FP frames",
        "false kills",
        "false reviews",
    ]
    return [
        *_heading(
            "Negatives",
            f"{counts['negative_frames']:,} frames: the other pictures' transformed frames, "
            f"{counts.get('crop frames', 0):,} random crops, "
            f"{counts.get('footage frames', 0):,} footage keyframes. "
            "False decisions: what the default policy decided on negatives.",
        ),
        *_table(header, rows),
    ]


def _negatives_row(method: str, result: dict[str, Any]) -> list[object]:
    false = result["false_decisions"]
    return [
        SHORT.get(method, method),
        f"{result['entries']:,}",
        _distance(result["negative_min"]),
        "-" if result["zero_fp_threshold"] is None else result["zero_fp_threshold"],
        f"{result['fp_pairs']:,}",
        f"{result['fp_frames']:,}",
        sum(v for k, v in false.items() if k.startswith("kill")),
        sum(v for k, v in false.items() if k.startswith("review")),
    ]


def _pdq_distances(report: dict[str, Any]) -> list[str]:
    methods = report["methods"]
    pdq = [m for m in ("plain-pdq", "sg-pdq", "sg-pdq-img") if m in methods]
    found_in = methods.get("sg-pdq-img", {}).get("transforms", {})
    rows = []
    for t in report["transforms"]:
        cells = [t["name"]]
        for m in pdq:
            r = methods[m]["transforms"][t["name"]]
            cells.append(" / ".join(_distance(r[k]) for k in ("p50", "p90", "max")))
        views = found_in.get(t["name"], {}).get("found_through", {})
        cells.append(", ".join(f"{k} {v}" for k, v in list(views.items())[:3]) or "-")
        rows.append(cells)
    return [
        *_heading(
            "PDQ distance to the picture's own entry",
            "p50 / p90 / max over the positives; `found through`: how the matches within "
            "threshold were found (entries from images): the frame as is, without its bars "
            "(`borders`) or turned (`flipx`, `rotate90`, ...), and which variant entry "
            "(`~crop5`).",
        ),
        *_table(["transform", *(SHORT[m] for m in pdq), "found through (sg PDQ, images)"], rows),
    ]


def _misses(report: dict[str, Any]) -> list[str]:
    methods, transforms = report["methods"], report["transforms"]
    shown = [m for m in MISSES if m in methods]
    missed: dict[str, Counter[str]] = {m: Counter() for m in shown}
    for m in shown:
        for t in transforms:
            missed[m].update(methods[m]["transforms"][t["name"]].get("missed", []))
    pictures = sorted(
        {p for m in shown for p in missed[m]}, key=lambda p: [-missed[m][p] for m in shown]
    )
    rows = [[p, *(missed[m][p] for m in shown)] for p in pictures]
    return [
        *_heading(
            "Misses by picture",
            f"Of the {len(transforms)} transforms, how many each picture was missed in at the "
            "configured thresholds (first keyframe); pictures missed in none are left out.",
        ),
        *_table(["picture", *(SHORT[m] for m in shown)], rows),
    ]


def _policy(report: dict[str, Any]) -> list[str]:
    methods = report["methods"]
    shown = [m for m in POLICY if m in methods]
    totals: dict[str, Counter[str]] = {m: Counter() for m in shown}
    rows = []
    for t in report["transforms"]:
        cells = [t["name"]]
        for m in shown:
            outcome = methods[m]["transforms"][t["name"]]["policy"]
            totals[m].update(outcome)
            cells.append(_outcomes(outcome))
        rows.append(cells)
    rows.append(["**all**", *(_outcomes(totals[m]) for m in shown)])
    return [
        *_heading(
            "What the policy decides",
            "Each positive is shown for two keyframes 2 s apart; default policy "
            "(docs/policy.md). Counts: killed on the first keyframe / on the second / "
            "reviewed / missed.",
        ),
        *_table(["transform", *(SHORT[m] for m in shown)], rows),
    ]


def _outcomes(outcome: Mapping[str, int]) -> str:
    """Streams killed on the first keyframe / on the second or later / reviewed / missed."""
    later = outcome.get("kill_second_keyframe", 0) + outcome.get("kill_later", 0)
    return (
        f"{outcome.get('kill_first_keyframe', 0)} / {later} / "
        f"{outcome.get('review', 0)} / {outcome.get('missed', 0)}"
    )


def _targets(report: dict[str, Any]) -> list[str]:
    rows = [
        [
            t["label"],
            SHORT.get(t["method"], t["method"]),
            f"≥ {percent(t['recall_target'])}",
            f"{t['worst_transform']}: {percent(t['worst_recall'])}",
            percent(t["pooled_recall"]),
            f"{t['fp_pairs']:,}",
            "**PASS**" if t["passed"] else "**FAIL**",
        ]
        for t in report["targets"]
    ]
    header = ["transforms", "method", "target", "worst", "mean", "FP pairs", "result"]
    return [*_heading("Targets"), *_table(header, rows, 2)]


def _production_check(report: dict[str, Any]) -> str:
    return (
        f"Production path check: FrameMatcher agreed with the brute-force distances on "
        f"{report['counts']['matcher_calls']:,} lookups "
        f"({report['consistency']['mismatches']} disagreements). "
        f"Run time {report['timings_s']['total_s']:.0f} s."
    )


SECTIONS: tuple[Callable[[dict[str, Any]], list[str]], ...] = (
    _recall,
    _recall_zero_fp,
    _negatives,
    _pdq_distances,
    _misses,
    _policy,
    _targets,
)
"""The report's sections after its introduction, in order."""


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path] | None:
    """PNG plots, or None when matplotlib is not installed (it is optional)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recall_png = out_dir / "detection_quality.png"
    _recall_plot(plt, report, recall_png)
    distances_png = out_dir / "detection_quality_distances.png"
    _distances_plot(plt, report, distances_png)
    return [recall_png, distances_png]


def _recall_plot(plt: ModuleType, report: dict[str, Any], path: Path) -> None:
    """Recall per transform, a bar per method."""
    methods = report["methods"]
    plotted = [m for m in PLOTTED if m in methods]
    names = [t["name"] for t in report["transforms"]]
    figure, axes = plt.subplots(figsize=(15, 5.6), layout="constrained")
    width = 0.8 / len(plotted)
    for i, m in enumerate(plotted):
        recall = [100 * (methods[m]["transforms"][t]["recall"] or 0) for t in names]
        axes.bar(
            [x + (i - (len(plotted) - 1) / 2) * width for x in range(len(names))],
            recall,
            width,
            label=SHORT[m],
        )
    axes.set_xticks(range(len(names)), names, rotation=55, ha="right")
    axes.set_ylabel("recall (%)")
    axes.set_ylim(0, 105)
    axes.set_title(
        f"Recall per transformation at {_thresholds(report)} "
        f"({report['counts']['positive_trials_per_transform']} pictures, H.264 keyframes)"
    )
    axes.grid(axis="y", alpha=0.3)
    figure.legend(ncols=len(plotted), loc="outside lower center", fontsize="small")
    figure.savefig(path, dpi=110)
    plt.close(figure)


DISTANCE_PANELS = (
    ("pdq/plain/hashes", "plain PDQ"),
    ("pdq/robust/images", "streamguard PDQ, entries from images"),
)
"""The probes whose distance distributions are plotted, and the panels' titles."""


def _distances_plot(plt: ModuleType, report: dict[str, Any], path: Path) -> None:
    """PDQ distances of the positives and the negatives, a panel per probe."""
    figure, axes = plt.subplots(
        1, len(DISTANCE_PANELS), figsize=(13, 4.2), layout="constrained", sharey=True
    )
    for ax, (key, title) in zip(axes, DISTANCE_PANELS, strict=True):
        _distance_panel(ax, report["probes"][key], title)
    axes[0].set_ylabel("fraction of comparisons")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _distance_panel(ax: Any, probe: dict[str, Any], title: str) -> None:
    """The two histograms in bins of 4 bits, with the threshold and the zero-FP one."""
    for name, colour in (("positive", "tab:green"), ("negative", "tab:red")):
        counts = probe[f"{name}_histogram"][:257]
        total = max(1, sum(probe[f"{name}_histogram"]))
        binned = [sum(counts[i : i + 4]) / total for i in range(0, 257, 4)]
        ax.stairs(
            binned,
            range(0, 261, 4),
            fill=True,
            alpha=0.5,
            color=colour,
            label=f"{name}s ({total:,})",
        )
    ax.axvline(
        probe["threshold"],
        color="black",
        linestyle="--",
        label=f"threshold {probe['threshold']}",
    )
    if probe["zero_fp_threshold"] >= 0:
        ax.axvline(
            probe["zero_fp_threshold"],
            color="grey",
            linestyle=":",
            label=f"zero-FP {probe['zero_fp_threshold']}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("PDQ distance to the entry (bits)")
    ax.set_title(title)
    ax.legend(fontsize="small")


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path, list[Path] | None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "quality.json"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    md_path = out_dir / "quality.md"
    md_path.write_text(markdown(report))
    return json_path, md_path, write_plots(report, out_dir)


def publish(report: dict[str, Any], out_dir: Path) -> list[Path] | None:
    """Write the report's files, print its Markdown, and say on stderr what was written.
    Returns the plots, or None without matplotlib."""
    json_path, md_path, plots = write_report(report, out_dir)
    print(markdown(report))
    written = [json_path, md_path, *(plots or [])]
    print(f"eval: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    if plots is None:
        print(
            "eval: matplotlib is not installed: no plots (pip install 'streamguard[quality]')",
            file=sys.stderr,
        )
    return plots
