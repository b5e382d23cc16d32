"""The report of ``streamguard eval`` (schema ``streamguard.eval.v1``): what the
observation loop recorded per frame, aggregated per probe (distance distributions,
false positives, recall at the configured and the zero-false-positive thresholds), per
method (recall, misses, what the policy decided) and per recall target."""

import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from streamguard import __version__
from streamguard.detect.policy import Decision
from streamguard.evaluation.corpus import Footage
from streamguard.evaluation.entries import NO_HASH
from streamguard.evaluation.methods import METHODS, PROBES, TARGETS, Method, Probe
from streamguard.evaluation.observation import BITRATES, Evaluation, Stream
from streamguard.evaluation.transforms import TRANSFORMS, Transform
from streamguard.hashing import ALGORITHMS

# -- statistics ---------------------------------------------------------------------------


def zero_fp_threshold(negative_min: int, bits: int) -> int:
    """The largest threshold with no negative within it (-1: none is)."""
    return min(negative_min - 1, bits)


def quantile(values: np.ndarray, q: float) -> int | None:
    return None if len(values) == 0 else int(np.quantile(values, q, method="higher"))


def _histogram(values: np.ndarray, bits: int) -> list[int]:
    """Counts per distance 0..bits, and one more for "no matchable hash"."""
    counts = np.bincount(np.minimum(values, bits + 1).astype(np.int64), minlength=bits + 2)
    return [int(n) for n in counts]


def _fraction(flags: np.ndarray) -> float | None:
    return None if len(flags) == 0 else float(np.mean(flags))


# -- the frames ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameTable:
    """What the evaluation recorded, as arrays of one row per decoded frame, with the
    pairs and rows the statistics are taken over."""

    stream: np.ndarray  # (frames,) stream index
    distances: dict[str, np.ndarray]  # probe key: (frames, pictures) least distance
    negative: np.ndarray  # (frames, pictures): the frame against another picture's entries
    positive_rows: np.ndarray  # the first keyframe of each positive stream
    positive_owner: np.ndarray  # (positive rows,) the picture each shows
    positive_transform: np.ndarray  # (positive rows,) the transform each shows it under


def frame_table(ev: Evaluation) -> FrameTable:
    owners = len(ev.names)
    frame_stream = np.array(ev.frame_stream, np.int64)
    frame_rep = np.array(ev.frame_rep, np.int64)
    stream_owner = np.array([s.owner for s in ev.streams], np.int64)
    stream_positive = np.array([s.positive for s in ev.streams], bool)
    stream_transform = np.array([s.transform for s in ev.streams], object)
    owner = stream_owner[frame_stream]
    distances = {
        key: np.stack(rows) if rows else np.zeros((0, owners), np.int16)
        for key, rows in ev.distances.items()
    }
    # Negative pairs: every frame against every entry of another picture.
    negative = np.ones((len(frame_stream), owners), bool)
    own = (owner >= 0) & (owner < owners)
    negative[np.flatnonzero(own), owner[own]] = False
    positive_rows = np.flatnonzero(stream_positive[frame_stream] & (frame_rep == 0))
    return FrameTable(
        frame_stream,
        distances,
        negative,
        positive_rows,
        owner[positive_rows],
        stream_transform[frame_stream][positive_rows],
    )


# -- per probe ----------------------------------------------------------------------------


def probe_summary(ev: Evaluation, frames: FrameTable, probe: Probe) -> dict[str, Any]:
    """One probe's distances: to the negatives (false positives), to the positives' own
    entries (recall per transform), and their histograms."""
    d = frames.distances[probe.key]
    bits = ALGORITHMS[probe.algo].bits
    threshold = ev.thresholds[probe.algo]
    negatives = d[frames.negative]
    negative_min = int(negatives.min()) if len(negatives) else NO_HASH
    zero_fp = zero_fp_threshold(negative_min, bits)
    false_hits = (d <= threshold) & frames.negative
    fp_rows, fp_entries = np.nonzero(false_hits)
    fp_by_entry = Counter(ev.entry_pictures[o].name for o in fp_entries.tolist())
    fp_by_stream = Counter(
        f"{ev.streams[s].kind}:{ev.streams[s].transform}" for s in frames.stream[fp_rows].tolist()
    )
    positive = d[frames.positive_rows, frames.positive_owner]
    return {
        "algo": probe.algo,
        "robust": probe.robust,
        "entries_from_images": probe.variants,
        "threshold": threshold,
        "entries": len(ev.sets[(probe.algo, probe.variants)].entries),
        "negative_min": negative_min,
        "negative_p01": quantile(negatives, 0.01),
        "zero_fp_threshold": zero_fp,
        "fp_pairs": int((negatives <= threshold).sum()),
        "fp_frames": int(false_hits.any(axis=1).sum()),
        "fp_by_entry": dict(fp_by_entry.most_common()),
        "fp_by_stream": dict(fp_by_stream.most_common(20)),
        "transforms": {
            t.name: _probe_transform(ev, frames, probe, positive, zero_fp, t) for t in TRANSFORMS
        },
        "positive_histogram": _histogram(positive, bits),
        "negative_histogram": _histogram(negatives, bits),
    }


def _probe_transform(
    ev: Evaluation,
    frames: FrameTable,
    probe: Probe,
    positive: np.ndarray,
    zero_fp: int,
    transform: Transform,
) -> dict[str, Any]:
    """The positives of one transform: recall, distances, and how they were found."""
    threshold = ev.thresholds[probe.algo]
    rows = frames.positive_transform == transform.name
    values = positive[rows].astype(np.int64)
    views = Counter(
        ev.found_through[probe.key][i]
        for i, hit in zip(frames.positive_rows[rows], values <= threshold, strict=True)
        if hit
    )
    return {
        "n": int(rows.sum()),
        "recall": _fraction(values <= threshold),
        "recall_zero_fp": _fraction(values <= zero_fp),
        "p50": quantile(values, 0.5),
        "p90": quantile(values, 0.9),
        "max": int(values.max()) if len(values) else None,
        "found_through": dict(views.most_common()),
        "by_picture": {
            ev.entry_pictures[o].name: int(v)
            for o, v in zip(frames.positive_owner[rows], values, strict=True)
        },
    }


# -- per method ---------------------------------------------------------------------------


def method_summary(
    ev: Evaluation, frames: FrameTable, method: Method, probes: Mapping[str, Any]
) -> dict[str, Any]:
    """One method: a frame matches if any of its probes does. A single-probe method
    also carries its probe's distances and zero-false-positive threshold."""
    hit = np.zeros(frames.distances[PROBES[0].key].shape, bool)
    for probe in method.probes:
        hit |= frames.distances[probe.key] <= ev.thresholds[probe.algo]
    single = probes[method.probes[0].key] if len(method.probes) == 1 else None
    false_decisions, false_examples = _false_decisions(ev.streams, method.name)
    return {
        "label": method.label,
        "probes": [p.key for p in method.probes],
        "robustness": {
            "borders": method.robustness.borders,
            "dihedral": method.robustness.dihedral,
        },
        "entries_from_images": method.variants,
        "entries": sum(len(ev.sets[(p.algo, p.variants)].entries) for p in method.probes),
        "zero_fp_threshold": single["zero_fp_threshold"] if single else None,
        "negative_min": single["negative_min"] if single else None,
        "fp_pairs": int((hit & frames.negative).sum()),
        "fp_frames": int((hit & frames.negative).any(axis=1).sum()),
        "false_decisions": dict(false_decisions),
        "false_decision_examples": sorted(false_examples, key=lambda e: e[0] != "k")[:20],
        "transforms": _method_transforms(ev, frames, method, hit, single),
    }


def _method_transforms(
    ev: Evaluation,
    frames: FrameTable,
    method: Method,
    hit: np.ndarray,
    single: Mapping[str, Any] | None,
) -> dict[str, dict[str, Any]]:
    """Per transform: recall on the first keyframe, the pictures missed, and what the
    policy decided on the whole stream."""
    positive_hit = hit[frames.positive_rows, frames.positive_owner]
    outcomes = _policy_outcomes(ev.streams, method.name, ev.encoding.gop_s)
    per_transform = {}
    for transform in TRANSFORMS:
        rows = frames.positive_transform == transform.name
        missed = frames.positive_owner[rows][~positive_hit[rows]]
        entry: dict[str, Any] = {
            "n": int(rows.sum()),
            "recall": _fraction(positive_hit[rows]),
            "missed": [ev.entry_pictures[o].name for o in missed.tolist()],
            "policy": dict(outcomes.get(transform.name, Counter())),
        }
        if single:
            entry |= {k: v for k, v in single["transforms"][transform.name].items() if k != "n"}
        per_transform[transform.name] = entry
    return per_transform


def _policy_outcomes(
    streams: Sequence[Stream], method: str, gop_s: float
) -> dict[str, Counter[str]]:
    """Per transform, how many of its positive streams ended in each outcome."""
    outcomes: dict[str, Counter[str]] = {}
    for stream in streams:
        if stream.positive:
            outcome = _outcome(stream.decisions[method], gop_s)
            outcomes.setdefault(stream.transform, Counter())[outcome] += 1
    return outcomes


def _outcome(decisions: Sequence[tuple[float, Decision, bool]], gop_s: float) -> str:
    """What the policy did with a positive stream, judged by its decisions on the
    stream's own picture: a kill on its first keyframe, its second, later; a review; none."""
    decided = [(at, d.action) for at, d, mine in decisions if mine]
    kills = [at for at, action in decided if action == "kill"]
    if kills and min(kills) == 0:
        return "kill_first_keyframe"
    if kills and min(kills) <= gop_s:
        return "kill_second_keyframe"
    if kills:
        return "kill_later"
    return "review" if decided else "missed"


def _false_decisions(streams: Sequence[Stream], method: str) -> tuple[Counter[str], list[str]]:
    """Decisions on negatives (another picture's entries, or any on a negative stream):
    counted by action and stream kind, and each described."""
    counts: Counter[str] = Counter()
    examples: list[str] = []
    for stream in streams:
        for at, decision, mine in stream.decisions[method]:
            if not mine or not stream.positive:
                counts[f"{decision.action}:{stream.kind}"] += 1
                match = decision.match
                examples.append(
                    f"{decision.action} {stream.kind}:{stream.transform} at {at:g} s: "
                    f"{match.hit.entry.id} {match.hash.algo} distance {match.hit.distance} "
                    f"({match.transform or 'as is'}, {decision.confirmations} frames)"
                )
    return counts, examples


# -- per target and the whole report ------------------------------------------------------


def target_summaries(methods: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target, for each of its methods: the worst and mean recall of its transforms."""
    targets = []
    for target in TARGETS:
        rows = [t for t in TRANSFORMS if t.group in target.groups]
        for name in target.methods:
            results = methods[name]["transforms"]
            recalls = {t.name: results[t.name]["recall"] or 0.0 for t in rows}
            worst = min(recalls, key=recalls.__getitem__)
            targets.append(
                {
                    "label": target.label,
                    "method": name,
                    "recall_target": target.recall,
                    "transforms": list(recalls),
                    "worst_transform": worst,
                    "worst_recall": recalls[worst],
                    "pooled_recall": float(np.mean(list(recalls.values()))),
                    "fp_pairs": methods[name]["fp_pairs"],
                    "passed": all(r >= target.recall for r in recalls.values()),
                }
            )
    return targets


def summarise(
    evaluation: Evaluation,
    corpus_name: str,
    footage: Sequence[Footage],
    counts: Mapping[str, int],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """The report of an evaluation, ``counts`` and ``timings`` being its run's own."""
    ev = evaluation
    frames = frame_table(ev)
    probes = {probe.key: probe_summary(ev, frames, probe) for probe in PROBES}
    methods = {method.name: method_summary(ev, frames, method, probes) for method in METHODS}
    return {
        "schema": "streamguard.eval.v1",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "streamguard": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "corpus": _corpus(ev, corpus_name, footage),
        "settings": _settings(ev),
        "counts": {
            **counts,
            "frames": len(frames.stream),
            "positive_trials_per_transform": len(ev.entry_pictures),
            "negative_frames": int(frames.negative.any(axis=1).sum()),
            "negative_comparisons": int(frames.negative.sum()),
            "matcher_calls": ev.matcher_calls,
        },
        "consistency": {"mismatches": len(ev.mismatches), "examples": ev.mismatches[:10]},
        "transforms": [
            {"name": t.name, "group": t.group, "description": t.description, "bitrate": t.bitrate}
            for t in TRANSFORMS
        ],
        "probes": probes,
        "methods": methods,
        "targets": target_summaries(methods),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def _corpus(ev: Evaluation, corpus_name: str, footage: Sequence[Footage]) -> dict[str, Any]:
    return {
        "source": corpus_name,
        "positives": [p.name for p in ev.entry_pictures],
        "negative_only": [p.name for p in ev.pictures if not p.entry],
        "footage": [{"name": f.name, "seconds": f.seconds, "source": f.source} for f in footage],
        "footage_seconds": sum(f.seconds for f in footage),
    }


def _settings(ev: Evaluation) -> dict[str, Any]:
    return {
        "thresholds": ev.thresholds,
        "encoding": {
            "codec": "libx264",
            "preset": ev.encoding.preset,
            "fps": ev.encoding.fps,
            "gop_s": ev.encoding.gop_s,
            "bitrates_at_720p": BITRATES,
            "keyframes_per_positive": 2,
        },
        "policy": "Policy() defaults (docs/policy.md)",
    }
