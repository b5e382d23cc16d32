"""Re-streams of a known video killed within 10 s, and no false kill on benign footage
against 100,000 known-video frames (issue 17's targets).

Everything goes through the production path: ``frames_of(source, Sampling())`` (guard
sampling, the default, its probes seeded), ``FrameMatcher`` on a ``Blocklist`` loaded
from streamguard CSV with the video columns, and ``StreamPolicy.observe`` with the default
policy, unchanged. Each file is one stream that arrives as a live one would: a frame's
arrival time is the first frame's plus its stream time (read from a file, frames arrive
faster than they play, and the policy's windows that count arrival time would stretch).

1. The known video (bench/known_video_media.py): pans over pictures cut with generated
   scenes, an original 720p H.264 upload. Its vPDQ, made by the reference ``vpdq``
   package (``--vpdq-python``), becomes its list rows (one per frame of quality ≥ 50);
   without that interpreter, streamguard hashes the same frames itself.
2. Re-streams made by FFmpeg from the original, each change alone and all together from
   several offsets: when the policy first kills and reviews (stream time from the
   re-stream's first frame), the event's video evidence, the best single-frame distance.
   With ``--vpdq-python``, the reference matcher (``match_VPDQ_hash_brute`` with its own
   thresholds) on the re-stream's vPDQ against the original's, side by side.
3. Benign footage (``streamguard eval``'s footage: other pictures, FFmpeg's sources as
   the footage uses them) against the known video's frames plus ``--decoys`` frames of
   decoy known videos (FFmpeg's sources under other seeds and parameters, one frame per
   second, PDQ): kills, reviews, samples that matched a decoy at all, each sample's
   distance to its nearest list frame, and the alignment closest to a kill
   (detect/video.py's tracker fed what the policy sees).

Media and the decoy list are cached in ``--cache``; results go to ``--out``
(known_video.json, known_video.md).
"""

import argparse
import csv
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench import parse
from bench.known_video_lists import (
    Feature,
    decoy_list,
    own_vpdq,
    reference_match,
    reference_vpdq,
    video_rows,
    write_csv,
)
from bench.known_video_media import KNOWN_PICTURES, known_video, restream, restreams
from bench.known_video_watch import KNOWN, codes_of, nearness, watch
from bench.report import (
    commit,
    fmt,
    invocation,
    machine,
    publish,
    saved,
    table,
    verdict,
)
from streamguard.blocklist.memory import Blocklist
from streamguard.evaluation.corpus import (
    Picture,
    footage_jobs,
    generated_pictures,
    make_footage,
    skimage_pictures,
)
from streamguard.hashing.pdq import MIN_QUALITY

KILL_WITHIN_S = 10.0
SMOKE = {
    "scene_s": 6.0,
    "pictures": 2,
    "size": "640x360",
    "restream_s": 12.0,
    "offsets": [0.0, 3.1],
    "benign_minutes": 1.0,
    "benign_pictures": 2,
    "decoys": 1000,
    "decoy_frames": 250,
    "runs": 1,
    "vpdq_python": None,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the parts ------------------------------------------------------------------------------


def pictures(cache: Path, known_count: int, benign_count: int) -> tuple[list[Picture], str]:
    """The known video's pictures and the benign footage's (none in common), and where
    they come from."""
    found = skimage_pictures(cache / "pictures")
    if found is None:
        made = generated_pictures(cache / "pictures", known_count + benign_count)
        return made, "generated (scikit-image not installed)"
    known = [p for p in found if p.name in KNOWN_PICTURES][:known_count]
    others = [p for p in found if p.name not in KNOWN_PICTURES][:benign_count]
    return known + others, "scikit-image"


def known_list(
    original: Path, out: Path, python: str | None
) -> tuple[Path, list[Feature], dict[str, Any]]:
    """The known video's list rows; with the reference, also how far streamguard's own
    hashes of the same frames are from it."""
    own = own_vpdq(original)
    figures: dict[str, Any] = {"hashed_by": "streamguard (no --vpdq-python)"}
    features = own
    if python is not None:
        features = reference_vpdq(python, original)
        figures["hashed_by"] = "vpdq (reference)"
        by_ts = {f.ts_s: f for f in own}
        drift = [
            _bits(f.hex, by_ts[f.ts_s].hex)
            for f in features
            if f.ts_s in by_ts and f.quality >= MIN_QUALITY
        ]
        figures["own_vs_reference_bits"] = {
            "frames": len(drift),
            "median": float(np.median(drift)) if drift else None,
            "max": max(drift, default=None),
        }
    rows = video_rows(KNOWN, features)
    figures.update(frames=len(features), rows=len(rows))
    return write_csv(out / "known.csv", rows), features, figures


def _bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def run_restreams(
    args: argparse.Namespace,
    original: Path,
    blocklist: Blocklist,
    reference: list[Feature],
) -> list[dict[str, Any]]:
    """Each re-stream watched ``args.runs`` times, guard's probes seeded differently."""
    rows = []
    for number, spec in enumerate(restreams(tuple(args.offsets))):
        path = restream(args.cache, original, spec, args.restream_s)
        runs = []
        for run in range(args.runs):
            seen = watch(path, blocklist, seed=100 * number + run)
            kill, review = seen.first("kill"), seen.first("review")
            runs.append(
                {
                    "samples": seen.samples,
                    "samples_known": seen.samples_known,
                    "first_kill_s": kill["stream_s"] if kill else None,
                    "first_review_s": review["stream_s"] if review else None,
                    "kill": kill,
                    "best": seen.best,
                }
            )
        row: dict[str, Any] = {
            "name": spec.name,
            "expected_offset_s": spec.video_s(0.0),
            "speed": spec.speed,
            "runs": runs,
        }
        if args.vpdq_python:
            query = reference_vpdq(args.vpdq_python, path)
            row["reference"] = reference_match(args.vpdq_python, query, reference, args.work)
        kills = ", ".join(fmt(run["first_kill_s"]) for run in runs)
        log(f"{spec.name}: kills at {kills} s")
        rows.append(row)
    return rows


def list_codes(paths: list[Path]) -> np.ndarray:
    """Every PDQ hash of the lists, for the benign samples' margin."""
    hashes = []
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            hashes += [row["hash"] for row in csv.DictReader(lines)]
    return codes_of(hashes)


def run_benign(
    args: argparse.Namespace, benign: list[Picture], blocklist: Blocklist, codes: np.ndarray
) -> dict[str, Any]:
    """The footage's files, each a stream of its own."""
    jobs = footage_jobs(args.cache / "footage", args.benign_minutes * 60, benign)
    streams = []
    nearest_bits: list[int] = []
    for number, job in enumerate(jobs):
        footage = make_footage(job)
        seen = watch(footage.path, blocklist, seed=1000 + number, codes=codes)
        nearest_bits += seen.nearest_bits
        streams.append(
            {
                "name": footage.name,
                "seconds": round(footage.seconds, 1),
                "samples": seen.samples,
                "samples_other": seen.samples_other,
                "samples_known": seen.samples_known,
                "nearest_bits": min(seen.nearest_bits, default=None),
                "decisions": seen.decisions,
                "closest": seen.closest,
            }
        )
    decisions = [d for s in streams for d in s["decisions"]]
    aligned = [s["closest"] for s in streams if s["closest"]]
    return {
        "streams": streams,
        "seconds": round(sum(s["seconds"] for s in streams), 1),
        "samples": sum(s["samples"] for s in streams),
        "samples_other": sum(s["samples_other"] for s in streams),
        "samples_known": sum(s["samples_known"] for s in streams),
        "nearest_bits": {
            "samples": len(nearest_bits),
            "min": min(nearest_bits, default=None),
            "median": int(np.median(nearest_bits)) if nearest_bits else None,
        },
        "kills": sum(d["action"] == "kill" for d in decisions),
        "reviews": sum(d["action"] == "review" for d in decisions),
        "decisions": decisions,
        "closest": max(aligned, key=nearness, default=None),
    }


# -- report ---------------------------------------------------------------------------------


def _seconds(value: float | None) -> float:
    return math.inf if value is None else value


def _how(kill: dict[str, Any] | None, expected_offset_s: float) -> list[Any]:
    """How a kill was decided: on the video (its offset, with the expected one, frames
    matched and coverage) or on frames (one strong frame, or confirmations)."""
    if kill is None:
        return ["-", "-", "-", "-"]
    video = kill["video"]
    if video is None:
        match = kill["match"]
        if kill["confirmations"] == 1:
            return [f"one frame ({match['distance']} bits)", "-", "-", "-"]
        return [f"{kill['confirmations']} frames", "-", "-", "-"]
    offset = f"{video['offset_s']:.1f} ({expected_offset_s:g})"
    return ["video", offset, video["frames_matched"], video["coverage"]]


def _restream_row(row: dict[str, Any]) -> list[Any]:
    runs = row["runs"]
    kills = sorted(_seconds(run["first_kill_s"]) for run in runs)
    reviews = sorted(_seconds(run["first_review_s"]) for run in runs)
    slowest = max(runs, key=lambda run: _seconds(run["first_kill_s"]))
    best = min(
        (run["best"] for run in runs if run["best"]), key=lambda b: b["distance"], default=None
    )
    ref = row.get("reference")

    def shown(value: float) -> float | None:
        return None if math.isinf(value) else value

    return [
        row["name"],
        f"{sum(k <= KILL_WITHIN_S for k in kills)} / {len(runs)}",
        f"{fmt(shown(statistics.median_low(kills)))} / {fmt(shown(kills[-1]))}",
        shown(statistics.median_low(reviews)),
        *_how(slowest["kill"], row["expected_offset_s"]),
        f"{best['distance']} ({best['transform']})" if best else "-",
        f"{sum(r['samples_known'] for r in runs)} / {sum(r['samples'] for r in runs)}",
        f"{ref['query_percent']:.0f} / {ref['compared_percent']:.0f}" if ref else "-",
    ]


def _alignment(evidence: dict[str, Any] | None) -> str:
    if evidence is None:
        return "none (no two samples lined up)"
    return (
        f"{evidence['video']}: {evidence['frames_matched']} samples over "
        f"{evidence['window_s']:g} s, coverage {evidence['coverage']:g}, offset "
        f"{evidence['offset_s']:g} s"
    )


def killed_on_time(restreamed: list[dict[str, Any]]) -> bool:
    """Every run of every re-stream killed within ``KILL_WITHIN_S``."""
    runs = [run for row in restreamed for run in row["runs"]]
    return all(_seconds(run["first_kill_s"]) <= KILL_WITHIN_S for run in runs)


def markdown(results: dict[str, Any]) -> str:
    known = results["known"]
    lines = [
        f"`{results['command']}` (commit {results['commit']}, {results['wall_s']:.0f} s, "
        f"peak RSS {results['peak_rss_mb']:.0f} MB)",
        "",
        f"Known video: {results['known_seconds']:.0f} s, {results['size']}, 25 fps, pans over "
        f"{results['pictures_known']} pictures ({results['pictures_from']}) cut with "
        f"generated scenes. vPDQ by {known['hashed_by']}: {known['frames']} frames, "
        f"{known['rows']} of quality ≥ 50 in the list.",
    ]
    drift = known.get("own_vs_reference_bits")
    if drift:
        lines[-1] += (
            f" streamguard's own PDQ of the same frames: median {drift['median']:g} bits from "
            f"the reference's, at most {drift['max']}."
        )
    lines += [
        f"List: {results['entries']:,} entries (the known video's and "
        f"{results['decoys']:,} frames of {results['decoy_videos']} decoy videos). Default "
        f"policy; re-streams {results['restream_s']:g} s long, each watched "
        f"{results['runs']} times (guard's probes seeded differently).",
        "",
    ]
    header = [
        "re-stream",
        f"killed ≤ {KILL_WITHIN_S:g} s",
        "first kill s: median / worst",
        "first review s (median)",
        "slowest kill: by",
        "offset s (expected)",
        "frames",
        "coverage",
        "best distance (transform)",
        "samples matched",
        "reference % query / compared",
    ]
    lines += table(header, [_restream_row(row) for row in results["restreams"]])
    on_time = killed_on_time(results["restreams"])
    benign = results["benign"]
    nearest = benign["nearest_bits"]
    lines += [
        "",
        f"Killed within {KILL_WITHIN_S:g} s of going live, every re-stream and run: "
        f"{verdict(on_time)}.",
        "",
        f"Benign footage: {benign['seconds'] / 60:.1f} min in {len(benign['streams'])} "
        f"streams (one per file), {benign['samples']:,} samples.",
        "",
    ]
    lines += table(
        [
            "kills",
            "reviews",
            "samples matching a decoy",
            "nearest list frame, bits: min / median",
            "alignment nearest to a kill",
        ],
        [
            [
                benign["kills"],
                benign["reviews"],
                benign["samples_other"],
                f"{fmt(nearest['min'])} / {fmt(nearest['median'])}",
                _alignment(benign["closest"]),
            ]
        ],
    )
    lines += [""] if benign["decisions"] else []
    for decision in benign["decisions"]:
        match = decision["match"]
        lines.append(
            f"- {decision['action']} at {decision['stream_s']:g} s: {match['entry']} at "
            f"{match['distance']} bits; video evidence {_alignment(decision['video'])}"
        )
    lines += ["", f"Zero false kills: {verdict(benign['kills'] == 0)}."]
    return "\n".join(lines) + "\n"


def duration_s(video: Path) -> float:
    with av.open(str(video)) as container:
        return (container.duration or 0) / 1_000_000


def _size(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(phases: dict[str, dict[str, float]], name: str, step: Callable[[], Any]) -> Any:
    """``step()``, its wall time and the process's peak RSS after it in ``phases``."""
    started = time.monotonic()
    value = step()
    phases[name] = {"s": round(time.monotonic() - started, 1), "peak_rss_mb": peak_rss_mb()}
    log(f"{name}: {phases[name]['s']:.0f} s, peak RSS {phases[name]['peak_rss_mb']:.0f} MB")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vpdq-python", help="an interpreter with vpdq and threatexchange")
    parser.add_argument("--cache", type=Path, help="default: known_video/cache in --out")
    parser.add_argument("--scene-s", type=float, default=18.0, help="seconds per picture")
    parser.add_argument("--pictures", type=int, default=6, help="pictures in the known video")
    parser.add_argument("--size", default="1280x720", help="the known video's frame size")
    parser.add_argument("--restream-s", type=float, default=60.0, help="length of a re-stream")
    parser.add_argument("--offsets", type=float, nargs="+", default=[0.0, 7.3, 41.0, 95.0])
    parser.add_argument("--benign-minutes", type=float, default=30.0)
    parser.add_argument("--benign-pictures", type=int, default=16)
    parser.add_argument("--decoys", type=int, default=100_000, help="decoy frames in the list")
    parser.add_argument("--decoy-frames", type=int, default=1000, help="frames per decoy")
    parser.add_argument("--runs", type=int, default=5, help="watches of each re-stream")
    parser.add_argument("--seed", type=int, default=17)
    args = parse(parser, SMOKE, "known_video")
    if args.render:
        publish(args, "known_video", saved(args.out, "known_video"), markdown)
        return 0
    args.work = args.out / "known_video"
    args.cache = args.cache or args.work / "cache"
    args.work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    phases: dict[str, dict[str, float]] = {}
    chosen, source = pictures(args.cache, args.pictures, args.benign_pictures)
    known_pictures, benign = chosen[: args.pictures], chosen[args.pictures :]
    size = _size(args.size)
    original = _timed(
        phases, "known video", lambda: known_video(args.cache, known_pictures, args.scene_s, size)
    )
    known_csv, features, figures = _timed(
        phases, "its vPDQ", lambda: known_list(original, args.work, args.vpdq_python)
    )
    decoys = _timed(
        phases,
        "decoy list",
        lambda: decoy_list(args.cache, args.decoys, args.decoy_frames, args.seed),
    )
    blocklist, _ = _timed(phases, "load", lambda: Blocklist.from_files([known_csv, decoys]))
    restreamed = _timed(
        phases, "re-streams", lambda: run_restreams(args, original, blocklist, features)
    )
    codes = list_codes([known_csv, decoys])
    benign_run = _timed(phases, "benign", lambda: run_benign(args, benign, blocklist, codes))
    results = {
        "command": invocation(),
        "commit": commit(),
        "machine": machine("pyav", "numpy"),
        "pictures_from": source,
        "pictures_known": len(known_pictures),
        "size": args.size,
        "known_seconds": duration_s(original),
        "known": figures,
        "entries": len(blocklist),
        "decoys": args.decoys,
        "decoy_videos": len(json.loads(decoys.with_suffix(".json").read_text())),
        "runs": args.runs,
        "restream_s": args.restream_s,
        "restreams": restreamed,
        "benign": benign_run,
        "phases_s": phases,
        "wall_s": round(time.monotonic() - began, 1),
        "peak_rss_mb": peak_rss_mb(),
    }
    publish(args, "known_video", results, markdown)
    passed = killed_on_time(restreamed) and benign_run["kills"] == 0
    return 0 if args.smoke or passed else 1


if __name__ == "__main__":
    sys.exit(main())
