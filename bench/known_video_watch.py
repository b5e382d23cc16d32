"""One stream of bench_known_video through the production path, and what it shows.

``frames_of(source, Sampling())`` (guard sampling, its probes seeded), ``FrameMatcher``
and ``StreamPolicy.observe`` with the default policy. A file is read faster than it
plays, so each frame "arrives" at the first frame's arrival plus its stream time, as a
live stream's frames would: the policy's windows that count arrival time (confirmations,
incidents) then span what they span live.

Besides the decisions: the closest match of the known video; how many samples matched a
known video's frames at all; the alignment nearest to a kill that detect/video.py's
tracker found in what the policy sees; with ``codes``, each sample's PDQ distance to the
nearest of them, the frame as it is in any of PDQ's eight orientations, for samples of
quality ≥ 50 (the others are looked up nowhere): the margin under the matcher's threshold.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.blocklist.memory import Blocklist
from streamguard.cli.frames import frames_of
from streamguard.config.policy import Policy
from streamguard.config.sampling import Sampling
from streamguard.detect.matcher import FrameMatcher, Match
from streamguard.detect.policy import StreamPolicy, counts
from streamguard.detect.video import VideoEvidence, VideoTracker
from streamguard.hashing.pdq import MIN_QUALITY, pdq_dihedral

POLICY = Policy()
KNOWN = "known-video"  # the known video's id in the list


@dataclass
class Watched:
    """What one stream's samples matched and what the policy decided on them."""

    samples: int = 0
    samples_known: int = 0  # samples with a match of the known video's frames
    samples_other: int = 0  # samples with a match of another video's (a decoy's) frames
    best: dict[str, Any] | None = None  # the closest match of the known video
    decisions: list[dict[str, Any]] = field(default_factory=list)
    closest: dict[str, Any] | None = None  # the alignment nearest to the policy's kill
    nearest_bits: list[int] = field(default_factory=list)  # per sample, with ``codes``

    def first(self, action: str) -> dict[str, Any] | None:
        return next((d for d in self.decisions if d["action"] == action), None)


def nearness(evidence: dict[str, Any]) -> tuple[float, int]:
    """How near an alignment is to the policy's kill (``video_frames`` aligned samples
    making up ``video_coverage`` of their span): 2 or more kills; then more frames."""
    rule = POLICY.default
    frames, coverage = evidence["frames_matched"], evidence["coverage"]
    near = min(frames / rule.video_frames, 1) + min(coverage / rule.video_coverage, 1)
    return near, frames


def codes_of(hex_hashes: list[str]) -> np.ndarray:
    """PDQ hashes as rows of four 64-bit words, for ``nearest``."""
    return np.frombuffer(bytes.fromhex("".join(hex_hashes)), np.uint64).reshape(-1, 4)


def nearest(digests: list[bytes], codes: np.ndarray) -> int:
    """The smallest Hamming distance from any of ``digests`` to any row of ``codes``."""
    queries = codes_of([digest.hex() for digest in digests])
    best = 256
    for chunk in range(0, len(codes), 50_000):
        part = codes[chunk : chunk + 50_000]
        bits = np.bitwise_count(part[None, :, :] ^ queries[:, None, :]).sum(axis=2)
        best = min(best, int(bits.min()))
    return best


def watch(path: Path, blocklist: Blocklist, seed: int, codes: np.ndarray | None = None) -> Watched:
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
        seen.samples_other += any(m.hit.entry.video not in ("", KNOWN) for m in matches)
        for match in known:
            if seen.best is None or match.hit.distance < seen.best["distance"]:
                seen.best = _match(match, stream_s)
        videos = [m for m in matches if _video_frame(m) and counts(rule, m)]
        for evidence in tracker.observe(frame.pts_s, videos):
            found = {"stream_s": round(stream_s, 2), **_evidence(evidence)}
            if seen.closest is None or nearness(found) > nearness(seen.closest):
                seen.closest = found
        if codes is not None:
            digests, quality = pdq_dihedral(frame.luma)
            if quality >= MIN_QUALITY:  # the matcher looks the others up nowhere
                seen.nearest_bits.append(nearest(digests, codes))
        decision = policy.observe(matches, arrived + stream_s, frame.pts_s)
        if decision is not None:
            seen.decisions.append(
                {
                    "stream_s": round(stream_s, 2),
                    "action": str(decision.action),
                    "confirmations": decision.confirmations,
                    "match": _match(decision.match, stream_s),
                    "video": _evidence(decision.video) if decision.video else None,
                }
            )
    return seen


def _video_frame(match: Match) -> bool:
    """A match the policy's known-video trackers see (detect/policy.py ``_known_videos``)."""
    return bool(match.hit.entry.video) and not match.hit.entry.degenerate


def _evidence(evidence: VideoEvidence) -> dict[str, Any]:
    return {
        "video": evidence.video,
        "offset_s": round(evidence.offset_s, 2),
        "frames_matched": evidence.frames_matched,
        "window_s": round(evidence.window_s, 2),
        "coverage": round(evidence.coverage, 3),
    }


def _match(match: Match, stream_s: float) -> dict[str, Any]:
    return {
        "stream_s": round(stream_s, 2),
        "entry": match.hit.entry.id,
        "distance": match.hit.distance,
        "quality": match.hash.quality,
        "transform": match.transform or "as is",
    }
