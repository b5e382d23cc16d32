"""Benign footage against a list full of degenerate entries (issue 15): no kill, no review.

Target: zero false kills and zero false reviews on 30 minutes of benign footage that
includes black, white, fades, slates and gradients, with degenerate entries in the list.

The footage (tests/support/benign.py) is made by FFmpeg: test cards, fractals, cellular
automata and smooth colour fields, and between them black, white, grey and tinted slates
(some noisy), fades to and from black and white, linear gradients at random angles,
radial gradients, vignettes and noisy dark screens, each with random levels. 1280x720,
4 fps, a keyframe every 0.5 s. It is read as one stream through the production path: the
keyframe sampler (every keyframe: without its flood cap, ``EVERY_KEYFRAME``),
``FrameMatcher`` and ``StreamPolicy`` with the default policy, against a
blocklist loaded as ``--allow-degenerate`` loads it. Decisions are counted twice: for the
footage as one stream (every decision, as with ``keep_watching_after_kill``), and for each
segment as a stream of its own (a broadcast that shows only that slate, fade...). The
list:

- every algorithm's hash of every featureless reference picture (hashing/featureless.py);
- what ``blocklist add-image`` would have written, without its refusal, for a still of
  every featureless segment (a fade's black or white end): the degenerate ones (the
  others are counted and left out: they are not degenerate entries);
- streamguard/samples/blocklist.csv, real entries the footage never shows.

The same frames also go through the matching as it was before issue 15 (no stable-bit
gate, no featureless-hash gate, degenerate entries not marked), for comparison.

``--smoke`` (1 minute, 4 s segments: every kind) is run by
tests/integration/test_degenerate.py. Writes
bench/out/benign/benign.json and prints a markdown summary.
"""

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import OUT, parse
from bench.report import commit, invocation, machine
from streamguard.blocklist.degenerate import Featureless
from streamguard.blocklist.entry import BASE_COLUMNS
from streamguard.blocklist.memory import Blocklist
from streamguard.config.policy import Policy
from streamguard.detect.matcher import FrameMatcher, Match, frame_hashes
from streamguard.detect.policy import StreamPolicy
from streamguard.evaluation.corpus import keyframes
from streamguard.hashing import ALGORITHMS, MIN_QUALITY, hash_luma
from streamguard.hashing.featureless import featureless_pictures
from streamguard.hashing.picture import hash_picture, load_picture
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.sampler import Frame
from streamguard.samples import SAMPLES_DIR
from tests.support.benign import (
    EVERY_KEYFRAME,
    Segment,
    blankest_s,
    render,
    segment_at,
    segments,
)

SAMPLE_LIST = SAMPLES_DIR / "blocklist.csv"
ALGOS = list(ALGORITHMS)
SMOKE = {"minutes": 1.0, "segment_s": 4.0}  # every kind of segment


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the list -------------------------------------------------------------------------------


def still(clip: Path, at_s: float, path: Path) -> Path:
    """The frame of ``clip`` at ``at_s`` as a PNG, as someone saving a frame would make it."""
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    command += ["-ss", f"{at_s:.3f}", "-i", str(clip), "-frames:v", "1", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def careless_list(clip: Path, parts: list[Segment], path: Path) -> dict[str, Any]:
    """Write the degenerate entries described in the module docstring to ``path``."""
    stills = path.parent / "stills"
    stills.mkdir(exist_ok=True)
    rows, left_out = [], Counter()
    for name, pixels in featureless_pictures():
        rows += [(h.algo, h.hex, f"{name}-{h.algo}") for h in hash_luma(Luma(pixels), ALGOS)]
    start = 0.0
    for number, part in enumerate(parts):
        if part.featureless:
            image = still(clip, start + blankest_s(part), stills / f"{number}.png")
            hashes = hash_picture(load_picture(image), ALGOS)
            degenerate = Featureless().of([h.algo for h in hashes], [h.digest for h in hashes])
            for frame_hash, flag in zip(hashes, degenerate.tolist(), strict=True):
                if flag:
                    rows.append(
                        (
                            frame_hash.algo,
                            frame_hash.hex,
                            f"still{number}-{part.kind}-{frame_hash.algo}",
                        )
                    )
                else:
                    left_out[f"{part.kind} {frame_hash.algo}"] += 1
        start += part.seconds
    with path.open("w", encoding="utf-8") as output:
        output.write(",".join(BASE_COLUMNS) + "\n")
        for algo, hex_hash, entry_id in rows:
            output.write(f"{algo},{hex_hash},{entry_id},careless,csam,\n")
    return {"careless_entries": len(rows), "stills_not_degenerate": dict(left_out)}


# -- matching, now and before -----------------------------------------------------------------


def ungated(blocklist: Blocklist, frame: Frame) -> list[Match]:
    """Matches as the matcher found them before issue 15: only PDQ's quality gate, and
    degenerate entries not marked."""
    best: dict[tuple[str, str, str], Match] = {}
    for transform, frame_hash in frame_hashes(frame.luma, blocklist.algos):
        if frame_hash.quality is not None and frame_hash.quality < MIN_QUALITY:
            continue
        for hit in blocklist.search(frame_hash.algo, frame_hash.digest):
            unmarked = replace(hit, entry=replace(hit.entry, degenerate=False))
            key = (frame_hash.algo, hit.entry.list, hit.entry.id)
            if key not in best or hit.distance < best[key].hit.distance:
                best[key] = Match(frame, frame_hash, unmarked, frame.received_at, transform)
    return list(best.values())


POLICY = replace(Policy(), keep_watching_after_kill=True)


class Tally:
    """Matches and decisions of one way of matching, by the kind of segment on screen."""

    def __init__(self) -> None:
        self.stream = StreamPolicy(POLICY)
        self.segments: dict[int, StreamPolicy] = {}
        self.matches: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()  # "stream kill", "segment review"...
        self.decided: Counter[str] = Counter()  # segment decisions by kind
        self.examples: list[str] = []

    def observe(self, number: int, part: Segment, matches: list[Match], at: float) -> None:
        for match in matches:
            self.matches[f"{part.kind} {match.hash.algo}"] += 1
        own = self.segments.setdefault(number, StreamPolicy(POLICY))
        for scope, policy in (("stream", self.stream), ("segment", own)):
            decision = policy.observe(matches, at)
            if decision is None:
                continue
            self.decisions[f"{scope} {decision.action}"] += 1
            if scope == "segment":
                self.decided[f"{part.kind} {decision.action}"] += 1
            if len(self.examples) < 10:
                best = decision.match
                self.examples.append(
                    f"{scope} {decision.action} at {at:.1f} s ({part.kind}): "
                    f"{best.hit.entry.id} distance {best.hit.distance}, "
                    f"{decision.confirmations} frames"
                )

    def summary(self) -> dict[str, Any]:
        return {
            "kill": self.decisions["stream kill"] + self.decisions["segment kill"],
            "review": self.decisions["stream review"] + self.decisions["segment review"],
            "decisions": dict(self.decisions),
            "segment_decisions_by_kind": dict(self.decided.most_common()),
            "matches": sum(self.matches.values()),
            "matches_by_kind": dict(self.matches.most_common()),
            "examples": self.examples,
        }


def ranges(frame: Frame, kind: str, seen: dict[str, dict[str, list[int]]]) -> None:
    """Widen ``seen[kind]`` to the frame's PDQ quality and pHash/dHash stable bits."""
    for frame_hash in hash_luma(frame.luma, ALGOS):
        value = frame_hash.quality if frame_hash.algo == "pdq" else frame_hash.stable_bits
        low, high = seen.setdefault(kind, {}).setdefault(frame_hash.algo, [value, value])
        seen[kind][frame_hash.algo] = [min(low, value), max(high, value)]


def run(clip: Path, parts: list[Segment], blocklist: Blocklist) -> dict[str, Any]:
    matcher = FrameMatcher(blocklist)
    now, before = Tally(), Tally()
    frames: Counter[str] = Counter()
    seen: dict[str, dict[str, list[int]]] = {}
    started = time.process_time()
    for frame in keyframes(clip, "benign", guard=EVERY_KEYFRAME):
        number = segment_at(parts, frame.pts_s)
        part = parts[number]
        frames["featureless" if part.featureless else "content"] += 1
        now.observe(number, part, matcher(frame), frame.pts_s)
        before.observe(number, part, ungated(blocklist, frame), frame.pts_s)
        ranges(frame, part.kind, seen)
    return {
        "keyframes": dict(frames),
        "ranges_by_kind": seen,  # [min, max] of PDQ quality, pHash/dHash stable bits
        "now": now.summary(),
        "before": before.summary(),
        "gated": {
            "pdq_low_quality": matcher.stats.low_quality,
            "featureless": matcher.stats.featureless,
        },
        "cpu_s": round(time.process_time() - started, 1),
    }


# -- report -----------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    frames = results["run"]["keyframes"]
    segments_n = sum(results["segments"].values())
    lines = [
        f"`{results['command']}` ({results['minutes']:g} min of footage in {segments_n} "
        f"segments, {sum(frames.values()):,} keyframes: {frames.get('featureless', 0):,} "
        f"featureless, {frames.get('content', 0):,} content; commit {results['commit']})",
        "",
        f"List: {results['entries']:,} entries, {results['degenerate_loaded']:,} of them "
        "degenerate (loaded with allow_degenerate).",
        "",
        "| matching | kills (stream / segments) | reviews (stream / segments) | matches |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key in (
        ("streamguard (this change)", "now"),
        ("before issue 15 (no frame gates, entries not marked)", "before"),
    ):
        row = results["run"][key]
        d = row["decisions"]
        lines.append(
            f"| {label} | {d.get('stream kill', 0)} / {d.get('segment kill', 0)} | "
            f"{d.get('stream review', 0)} / {d.get('segment review', 0)} | {row['matches']} |"
        )
    lines += [
        "",
        f"Target (zero false kills and reviews): **{'PASS' if results['passed'] else 'FAIL'}**.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--segment-s", type=float, default=20.0, help="seconds per segment")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, default=OUT / "benign")
    args = parse(parser, SMOKE)
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    parts = segments(args.minutes * 60, args.seed, args.segment_s)
    log(f"footage: {len(parts)} segments, {args.minutes:g} min")
    clip = render(parts, args.out / "footage")
    careless = args.out / "careless.csv"
    made = careless_list(clip, parts, careless)
    blocklist, refused = Blocklist.from_files([careless, SAMPLE_LIST], allow_degenerate=True)
    assert not refused
    degenerate = sum(blocklist.degenerate_counts().values())
    log(f"list: {len(blocklist)} entries, {degenerate} degenerate; reading the footage")
    ran = run(clip, parts, blocklist)
    now = ran["now"]
    results = {
        "command": invocation(),
        "minutes": args.minutes,
        "segments": Counter(part.kind for part in parts),
        "entries": len(blocklist),
        "degenerate_loaded": degenerate,
        **made,
        "run": ran,
        "passed": now["kill"] == 0 and now["review"] == 0,
        "wall_s": round(time.monotonic() - began, 1),
        "commit": commit(),
        "machine": machine("numpy"),
    }
    (args.out / "benign.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
