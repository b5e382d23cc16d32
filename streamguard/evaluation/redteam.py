"""``streamguard eval --adversarial``: the adversary's cases (adversary.py) through the
production path, each reported with detected or not, time to decision and CPU.

Each case's clip is released in real time by a small paced publisher (``replay.paced``,
with the case's stalls), read ahead and sampled as `run` does (``sample_frames`` with
the default ``guard`` sampling and ``max_lag_s``), hashed and matched (``FrameMatcher``)
and decided on (``StreamPolicy`` with the default policy), all cases at once, one
thread each, left out of the service's metrics. Only the network is left out:
tests/integration/test_adversary.py runs the same cases through nginx-rtmp and
`streamguard run`.

Keyframe dodging is also measured as a probability: ``trials`` scans of each dodge clip,
each with random numbers of its own as each process has, from files (not in real time).
"""

import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist
from streamguard.blocklist.variants import entry_id, image_hashes
from streamguard.config.policy import Policy
from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.detect.matcher import FrameMatcher
from streamguard.detect.policy import StreamPolicy
from streamguard.errors import SourceUnwatchable
from streamguard.evaluation import adversary
from streamguard.evaluation.adversary import Case
from streamguard.events.schema import Action
from streamguard.hashing import ALGORITHMS
from streamguard.hashing.picture import load_picture
from streamguard.ingest.replay import paced, stalling
from streamguard.ingest.sampler import sample_frames
from streamguard.ingest.source import VideoPacket, open_source, video_stream

MAX_LAG_S = 4.0  # run's default [ingest] max_lag_s
QUICK_SIZE = (640, 360)
WITHIN_S = (10, 20, 30, 60)


@dataclass
class Outcome:
    """What the production path made of one case."""

    case: str
    what: str
    expect: str
    decision: Action | None = None
    decision_s: float | None = None  # from the flagged picture's first appearance
    flagged_gops: int = 0  # stall-and-burst: GOPs with the flagged picture sent ...
    flagged_gops_found: int = 0  # ... and those with a matching sample
    samples: dict[str, int] = field(default_factory=dict)  # by reason
    cpu_ms_per_stream_s: float = 0.0  # decoding and hashing (reading not counted)
    error: str = ""

    @property
    def passed(self) -> bool:
        if self.expect == "nothing":
            return self.decision is None
        return self.decision == self.expect and self.flagged_gops_found == self.flagged_gops


def cases(quick: bool) -> list[Case]:
    """The suite: full length, or (``quick``) short and small enough for CI."""
    if not quick:
        return adversary.cases()
    size = QUICK_SIZE
    return [
        adversary.dodge(0.97, seconds=20, size=size),
        adversary.long_gop(gop_s=10, show_s=5, seconds=20, size=size),
        adversary.stall_and_burst(flagged_gops=2, benign_gops=2, size=size),
        adversary.oversized(seconds=8, size=size),
        adversary.unwatchable(seconds=10),
    ]


def blocklist_of(flagged: Path) -> Blocklist:
    """The flagged picture's entries, as ``blocklist add-image`` makes them."""
    entries = [
        Entry(h.algo, h.digest, entry_id(flagged.stem, h.algo, ""), "adversarial", "test")
        for _, h, problem in image_hashes(load_picture(flagged), ALGORITHMS, variants=False)
        if problem is None
    ]
    blocklist = Blocklist()
    blocklist.put(np.arange(len(entries)), entries)
    return blocklist


def pictures(flagged: Path, benign: Path) -> tuple[np.ndarray, np.ndarray]:
    def rgb(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return rgb(flagged), rgb(benign)


def run_case(path: Path, case: Case, blocklist: Blocklist, outcome: Outcome) -> None:
    """Publish ``path`` in real time (with the case's stalls) into the live sampler."""
    matcher, policy = FrameMatcher(blocklist, metered=False), StreamPolicy(Policy())
    flagged = case.segments[0].flagged
    period = case.period_s or 1.0
    found: set[int] = set()
    started, cpu_started = time.monotonic(), time.thread_time()
    shown_at = started + case.flagged_from_s + case.stall_s  # a stall comes before it
    stall = case.stall()

    def publisher(packets: Iterator[VideoPacket]) -> Iterator[VideoPacket]:
        return stalling(paced(packets), stall)

    with open_source(str(path)) as container:
        stream = video_stream(container, str(path))
        try:
            for frame in sample_frames(
                container,
                stream,
                case.name,
                Sampling(),
                pace=publisher,
                max_lag_s=MAX_LAG_S,
                metered=False,
            ):
                outcome.samples[frame.reason] = outcome.samples.get(frame.reason, 0) + 1
                matches = matcher(frame)
                if matches and case.stall_s:
                    found.add(int(frame.pts_s // period))
                decision = policy.observe(matches, frame.received_at)
                if decision is not None and outcome.decision is None:
                    outcome.decision = decision.action
                    outcome.decision_s = round(time.monotonic() - shown_at, 2)
        except SourceUnwatchable as exc:
            outcome.decision = policy.unwatchable(time.time())
            outcome.decision_s = round(time.monotonic() - started, 2)
            outcome.error = str(exc)
    if case.stall_s:
        gop_frames = round(2.0 * adversary.FPS)
        total = round(case.seconds * adversary.FPS)
        outcome.flagged_gops = sum(1 for n in range(0, total, gop_frames) if flagged(n))
        outcome.flagged_gops_found = len(found)
    elapsed_s = time.monotonic() - started
    outcome.cpu_ms_per_stream_s = round(1000 * (time.thread_time() - cpu_started) / elapsed_s, 2)


def first_match_s(path: Path, matcher: FrameMatcher, seed: int) -> float | None:
    """Stream time of the first matching sample of a scan of ``path`` with guard sampling
    and the random numbers of ``seed``."""
    with open_source(str(path)) as container:
        stream = video_stream(container, str(path))
        frames = sample_frames(
            container, stream, path.name, Sampling(), rng=random.Random(seed), metered=False
        )
        return next((frame.pts_s for frame in frames if matcher(frame)), None)


def dodge_probability(
    path: Path, case: Case, blocklist: Blocklist, trials: int, guard: GuardSettings
) -> dict[str, Any]:
    """The share of ``trials`` that found ``case`` within each of WITHIN_S, measured and
    as the formula of docs/sampling.md expects it."""
    matcher = FrameMatcher(blocklist, metered=False)
    found = [first_match_s(path, matcher, seed) for seed in range(trials)]
    decided = [t for t in found if t is not None]
    gop_s = 2.0
    share = 1 - (round(case.flagged_from_s * adversary.FPS) / (gop_s * adversary.FPS))
    per_gop = min(1.0, gop_s / guard.probe_every_s) * share
    return {
        "case": case.name,
        "share": round(share, 3),
        "trials": trials,
        "within": {
            f"{s} s": round(sum(1 for t in decided if t <= s) / trials, 3)
            for s in WITHIN_S
            if s <= case.seconds
        },
        "expected": {
            f"{s} s": round(1 - (1 - per_gop) ** (s / gop_s), 3)
            for s in WITHIN_S
            if s <= case.seconds
        },
        "median_s": round(statistics.median(decided), 1) if decided else None,
    }


def evaluate(
    work: Path,
    flagged: Path,
    benign: Path,
    blocklist: Blocklist,
    *,
    quick: bool,
    trials: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every case at once in real time, then the dodge probabilities."""
    work.mkdir(parents=True, exist_ok=True)
    pictures_ = pictures(flagged, benign)
    suite = cases(quick)
    log(f"adversarial: encoding {len(suite)} cases")
    clips = {
        case.name: adversary.write_clip(work / f"{case.name}.flv", case, *pictures_)
        for case in suite
    }
    outcomes = [Outcome(case.name, case.what, case.expect) for case in suite]
    threads = [
        threading.Thread(target=run_case, args=(clips[c.name], c, blocklist, o), name=c.name)
        for c, o in zip(suite, outcomes, strict=True)
    ]
    log(f"adversarial: publishing them in real time ({max(c.seconds for c in suite):.0f} s)")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    dodges = [case for case in suite if case.name.startswith("dodge")]
    if not quick:  # cuts (found in their GOP) and fades (found by random probes alone)
        dodges = [
            adversary.dodge(share, seconds=60, fade_s=fade_s)
            for fade_s in (0.0, 0.5)
            for share in (0.97, 0.5, 0.25)
        ]
    probability = []
    for case in dodges:
        path = clips.get(case.name) or adversary.write_clip(
            work / f"{case.name}-60s.flv", case, *pictures_
        )
        log(f"adversarial: {trials} trials of {case.name}")
        probability.append(dodge_probability(path, case, blocklist, trials, GuardSettings()))
    return {
        "cases": [asdict(o) | {"passed": o.passed} for o in outcomes],
        "dodge_probability": probability,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Adversarial streams (streamguard eval --adversarial)",
        "",
        "| case | what the publisher does | expected | decided | time to decision (s) "
        "| flagged GOPs found | samples | CPU ms per stream-second | pass |",
        "| --- | --- | --- | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for case in report["cases"]:
        gops = (
            f"{case['flagged_gops_found']}/{case['flagged_gops']}" if case["flagged_gops"] else ""
        )
        samples = ", ".join(f"{k} {v}" for k, v in sorted(case["samples"].items()))
        lines.append(
            f"| {case['case']} | {case['what']} | {case['expect']} | {case['decision'] or '-'} "
            f"| {case['decision_s'] if case['decision_s'] is not None else '-'} | {gops} "
            f"| {samples} | {case['cpu_ms_per_stream_s']} | {'yes' if case['passed'] else 'NO'} |"
        )
    lines += [
        "",
        "Time to decision: from the flagged picture's first appearance (unwatchable: from the "
        "stream's start). CPU: the case's decoding and hashing thread.",
        "",
        "## Keyframe dodging: share of trials decided within (expected from probes alone)",
        "",
        "| case | share of GOP | trials | "
        + " | ".join(f"{s} s" for s in WITHIN_S)
        + " | median s |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in WITHIN_S) + " | ---: |",
    ]
    for row in report["dodge_probability"]:
        cells = [
            f"{row['within'][f'{s} s']} ({row['expected'][f'{s} s']})"
            if f"{s} s" in row["within"]
            else "-"
            for s in WITHIN_S
        ]
        lines.append(
            f"| {row['case']} | {row['share']} | {row['trials']} | "
            + " | ".join(cells)
            + f" | {row['median_s']} |"
        )
    return "\n".join(lines) + "\n"


def publish(report: dict[str, Any], out_dir: Path) -> None:
    """Write adversarial.json and adversarial.md, print the Markdown, and say on stderr
    what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "adversarial.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out_dir / "adversarial.md").write_text(text)
    print(text)
    print(f"eval: wrote {out_dir / 'adversarial.md'}, .json", file=sys.stderr)
