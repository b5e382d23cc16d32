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
   second, PDQ): kills, reviews, samples that matched a decoy at all, and the alignment
   closest to a kill (detect/video.py's tracker fed what the policy sees).

Media and the decoy list are cached in ``--cache``; results go to ``--out``
(known_video.json, known_video.md).
"""

import argparse
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from bench.report import commit, fmt, invocation, machine, publish, saved, table, verdict
from streamguard.blocklist.memory import Blocklist
from streamguard.cli.frames import frames_of
from streamguard.config.policy import Policy
from streamguard.config.sampling import Sampling
from streamguard.detect.matcher import FrameMatcher, Match
from streamguard.detect.policy import StreamPolicy, counts
from streamguard.detect.video import VideoEvidence, VideoTracker
from streamguard.evaluation.corpus import (
    Picture,
    footage_jobs,
    generated_pictures,
    make_footage,
    skimage_pictures,
)

KNOWN = "known-video"  # the known video's id in the list
KILL_WITHIN_S = 10.0
POLICY = Policy()
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
    "vpdq_python": None,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- one stream through the production path ---------------------------------------------------


@dataclass
class Watched:
    """What one stream's samples matched and what the policy decided on them."""

    samples: int = 0
    samples_known: int = 0  # samples with a match of the known video's frames
    samples_decoy: int = 0  # samples with a match of a decoy's frames
    best: dict[str, Any] | None = None  # the closest match of the known video
    decisions: list[dict[str, Any]] = field(default_factory=list)
    closest: dict[str, Any] | None = None  # the alignment nearest to the policy's kill

    def first(self, action: str) -> float | None:
        return next((d["stream_s"] for d in self.decisions if d["action"] == action), None)


def _evidence(evidence: VideoEvidence) -> dict[str, Any]:
    return {
        "video": evidence.video,
        "offset_s": round(evidence.offset_s, 2),
        "frames_matched": evidence.frames_matched,
        "window_s": round(evidence.window_s, 2),
        "coverage": round(evidence.coverage, 3),
    }


def nearness(evidence: dict[str, Any]) -> tuple[float, int]:
    """How near an alignment is to the policy's kill (``video_frames`` aligned samples
    making up ``video_coverage`` of their span): 2 or more kills; then more frames."""
    rule = POLICY.default
    frames, coverage = evidence["frames_matched"], evidence["coverage"]
    near = min(frames / rule.video_frames, 1) + min(coverage / rule.video_coverage, 1)
    return near, frames


def watch(path: Path, blocklist: Blocklist, seed: int) -> Watched:
    """Read ``path`` as one live stream; see the module docstring."""
    matcher = FrameMatcher(blocklist, metered=False)
    policy = StreamPolicy(POLICY)
    rule = POLICY.default
    tracker = VideoTracker(rule.video_window_s)
    seen = Watched()
    start_s = arrived = 0.0
    for frame in frames_of(str(path), Sampling(), stream_id=path.stem, rng=random.Random(seed)):
        if not seen.samples:
            start_s, arrived = frame.pts_s, frame.received_at
        stream_s = frame.pts_s - start_s
        seen.samples += 1
        matches = matcher(frame)
        known = [m for m in matches if m.hit.entry.video == KNOWN]
        seen.samples_known += bool(known)
        seen.samples_decoy += len(known) < len(matches)
        for match in known:
            if seen.best is None or match.hit.distance < seen.best["distance"]:
                seen.best = _match(match, stream_s)
        videos = [m for m in matches if _video_frame(m) and counts(rule, m)]
        for evidence in tracker.observe(frame.pts_s, videos):
            found = {"stream_s": round(stream_s, 2), **_evidence(evidence)}
            if seen.closest is None or nearness(found) > nearness(seen.closest):
                seen.closest = found
        decision = policy.observe(matches, arrived + stream_s, frame.pts_s)
        if decision is not None:
            seen.decisions.append(
                {
                    "stream_s": round(stream_s, 2),
                    "action": str(decision.action),
                    "by": "video" if decision.video else "frames",
                    "confirmations": decision.confirmations,
                    "match": _match(decision.match, stream_s),
                    "video": _evidence(decision.video) if decision.video else None,
                }
            )
    return seen


def _video_frame(match: Match) -> bool:
    """A match the policy's known-video trackers see (detect/policy.py ``_known_videos``)."""
    return bool(match.hit.entry.video) and not match.hit.entry.degenerate


def _match(match: Match, stream_s: float) -> dict[str, Any]:
    return {
        "stream_s": round(stream_s, 2),
        "entry": match.hit.entry.id,
        "distance": match.hit.distance,
        "quality": match.hash.quality,
        "transform": match.transform or "as is",
    }


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
            _bits(f.hex, by_ts[f.ts_s].hex) for f in features if f.ts_s in by_ts and f.quality >= 50
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
    rows = []
    for number, spec in enumerate(restreams(tuple(args.offsets))):
        path = restream(args.cache, original, spec, args.restream_s)
        seen = watch(path, blocklist, seed=number)
        row: dict[str, Any] = {
            "name": spec.name,
            "expected_offset_s": spec.video_s(0.0),
            "speed": spec.speed,
            "samples": seen.samples,
            "samples_known": seen.samples_known,
            "first_kill_s": seen.first("kill"),
            "first_review_s": seen.first("review"),
            "decisions": seen.decisions,
            "best": seen.best,
        }
        if args.vpdq_python:
            query = reference_vpdq(args.vpdq_python, path)
            row["reference"] = reference_match(args.vpdq_python, query, reference, args.work)
        log(f"{spec.name}: kill at {fmt(row['first_kill_s'])} s")
        rows.append(row)
    return rows


def run_benign(
    args: argparse.Namespace, benign: list[Picture], blocklist: Blocklist
) -> dict[str, Any]:
    jobs = footage_jobs(args.cache / "footage", args.benign_minutes * 60, benign)
    streams = []
    for number, job in enumerate(jobs):
        footage = make_footage(job)
        seen = watch(footage.path, blocklist, seed=1000 + number)
        streams.append(
            {
                "name": footage.name,
                "seconds": round(footage.seconds, 1),
                "samples": seen.samples,
                "samples_decoy": seen.samples_decoy,
                "samples_known": seen.samples_known,
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
        "samples_decoy": sum(s["samples_decoy"] for s in streams),
        "samples_known": sum(s["samples_known"] for s in streams),
        "kills": sum(d["action"] == "kill" for d in decisions),
        "reviews": sum(d["action"] == "review" for d in decisions),
        "closest": max(aligned, key=nearness, default=None),
    }


# -- report ---------------------------------------------------------------------------------


def _video(decision: dict[str, Any] | None) -> list[Any]:
    """Offset, frames matched, coverage of a kill's video evidence (or how it was decided)."""
    if decision is None:
        return ["-", "-", "-"]
    video = decision["video"]
    if video is None:
        match = decision["match"]
        return [f"one frame ({match['distance']} bits)", "-", "-"]
    return [f"{video['offset_s']:.1f}", video["frames_matched"], video["coverage"]]


def markdown(results: dict[str, Any]) -> str:
    known = results["known"]
    lines = [
        f"`{results['command']}` (commit {results['commit']}, {results['wall_s']:.0f} s, "
        f"peak RSS {results['peak_rss_mb']:.0f} MB)",
        "",
        f"Known video: {results['known_seconds']:.0f} s, {results['size']}, 25 fps, pans over "
        f"{results['pictures_known']} pictures ({results['pictures_from']}) cut with "
        f"generated scenes. Its vPDQ hashed by {known['hashed_by']}: {known['frames']} frames, "
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
        f"{results['decoys']:,} decoy frames). Default policy; re-streams "
        f"{results['restream_s']:g} s long, guard sampling.",
        "",
    ]
    header = [
        "re-stream",
        "first kill s",
        "first review s",
        "kill: offset s (expected)",
        "frames",
        "coverage",
        "best distance (transform)",
        "samples matched",
        "reference % query / compared",
    ]
    rows = []
    for row in results["restreams"]:
        kill = next((d for d in row["decisions"] if d["action"] == "kill"), None)
        video = _video(kill)
        if kill and kill["video"]:
            video[0] += f" ({row['expected_offset_s']:g})"
        best = row["best"]
        ref = row.get("reference")
        rows.append(
            [
                row["name"],
                row["first_kill_s"],
                row["first_review_s"],
                *video,
                f"{best['distance']} ({best['transform']})" if best else "-",
                f"{row['samples_known']} / {row['samples']}",
                f"{ref['query_percent']:.0f} / {ref['compared_percent']:.0f}" if ref else "-",
            ]
        )
    lines += table(header, rows)
    killed = [r["first_kill_s"] for r in results["restreams"]]
    on_time = all(t is not None and t <= KILL_WITHIN_S for t in killed)
    benign = results["benign"]
    lines += [
        "",
        f"Kill within {KILL_WITHIN_S:g} s of going live, every re-stream: {verdict(on_time)}.",
        "",
        f"Benign footage: {benign['seconds'] / 60:.1f} min in {len(benign['streams'])} "
        f"streams, {benign['samples']:,} samples.",
        "",
    ]
    closest = benign["closest"]
    lines += table(
        ["kills", "reviews", "samples matching a decoy", "closest alignment to a kill"],
        [
            [
                benign["kills"],
                benign["reviews"],
                benign["samples_decoy"],
                (
                    f"{closest['video']}: {closest['frames_matched']} frames, coverage "
                    f"{closest['coverage']}, offset {closest['offset_s']} s"
                    if closest
                    else "none (no two samples aligned)"
                ),
            ]
        ],
    )
    lines += ["", f"Zero false kills: {verdict(benign['kills'] == 0)}."]
    return "\n".join(lines) + "\n"


def _size(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


def _timed(phases: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    value = step()
    phases[name] = round(time.monotonic() - started, 1)
    log(f"{name}: {phases[name]:.0f} s")
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
    parser.add_argument("--seed", type=int, default=17)
    args = parse(parser, SMOKE, "known_video")
    if args.render:
        publish(args, "known_video", saved(args.out, "known_video"), markdown)
        return 0
    args.work = args.out / "known_video"
    args.cache = args.cache or args.work / "cache"
    args.work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    phases: dict[str, float] = {}
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
    benign_run = _timed(phases, "benign", lambda: run_benign(args, benign, blocklist))
    results = {
        "command": invocation(),
        "commit": commit(),
        "machine": machine("pyav", "numpy"),
        "pictures_from": source,
        "pictures_known": len(known_pictures),
        "size": args.size,
        "known_seconds": features[-1].ts_s + 1 if features else 0,
        "known": figures,
        "entries": len(blocklist),
        "decoys": args.decoys,
        "restream_s": args.restream_s,
        "restreams": restreamed,
        "benign": benign_run,
        "phases_s": phases,
        "wall_s": round(time.monotonic() - began, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    publish(args, "known_video", results, markdown)
    killed = all(
        r["first_kill_s"] is not None and r["first_kill_s"] <= KILL_WITHIN_S for r in restreamed
    )
    return 0 if args.smoke or (killed and benign_run["kills"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
