"""The observation loop of ``streamguard eval``: streams of pictures encoded into H.264
clips and read back through the production sampler, each decoded frame hashed as
production does, measured by brute force against every entry, and run through
``FrameMatcher`` and the default policy, whose lookups are checked against the brute force.
What it records, one row per frame, is what summary.py aggregates."""

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamguard.blocklist.degenerate import Featureless
from streamguard.blocklist.variants import VARIANT_MARK
from streamguard.config.policy import Policy
from streamguard.detect.matcher import ROBUST, FrameMatcher, Match, frame_hashes, looked_up
from streamguard.detect.policy import Decision, StreamPolicy
from streamguard.errors import StreamguardError
from streamguard.evaluation import corpus
from streamguard.evaluation.corpus import Encoding, Footage, Picture
from streamguard.evaluation.entries import entry_sets, method_blocklist, min_distances, owner_of
from streamguard.evaluation.methods import ALGOS, METHODS, PROBES, Method, Probe
from streamguard.evaluation.options import Options
from streamguard.hashing import ALGORITHMS, FrameHash
from streamguard.ingest.sampler import Frame

BITRATES = {"high": 4_000_000, "low": 400_000, "std": 2_500_000}
"""Bits per second for a 1280x720 frame; other sizes scale with their pixel count."""
REFERENCE_PIXELS = 1280 * 720

Lookup = tuple[str, FrameHash]
"""One hash a frame is looked up with, and how it was looked at ("" as is, or a transform)."""


@dataclass(slots=True)
class Stream:
    """What one policy sees: one transformed picture, one random crop, or one footage clip."""

    index: int
    kind: str  # "item" | "crop" | "footage"
    owner: int  # picture number, -1 for footage of no picture
    transform: str
    positive: bool  # the picture itself, transformed: matches on its entries are detections
    policies: dict[str, StreamPolicy] = field(default_factory=dict)
    decisions: dict[str, list[tuple[float, Decision, bool]]] = field(default_factory=dict)
    last_at: float = 0.0


class Evaluation:
    """The pictures' entries and matchers, the streams, and what each decoded frame gave."""

    def __init__(self, pictures: Sequence[Picture], options: Options, encoding: Encoding) -> None:
        self.pictures = list(pictures)
        self.entry_pictures = [p for p in pictures if p.entry]
        self.options = options
        self.encoding = encoding
        self.thresholds = {a: s.default_threshold for a, s in ALGORITHMS.items()}
        self.thresholds.update(options.thresholds)
        self.featureless = Featureless(self.thresholds)
        self.names = {p.name: i for i, p in enumerate(self.entry_pictures)}
        others = [p for p in pictures if not p.entry]
        self.numbers = self.names | {p.name: len(self.names) + i for i, p in enumerate(others)}
        self.sets = entry_sets(self.entry_pictures)
        self.matchers = {
            m.name: FrameMatcher(
                method_blocklist(m, self.sets, self.thresholds),
                robustness=m.robustness,
                metered=False,
            )
            for m in METHODS
        }
        self.policy = Policy()
        self.streams: list[Stream] = []
        # One row per decoded frame.
        self.frame_stream: list[int] = []
        self.frame_rep: list[int] = []
        self.frame_quality: list[int] = []
        self.distances: dict[str, list[np.ndarray]] = {p.key: [] for p in PROBES}
        self.found_through: dict[str, list[str]] = {p.key: [] for p in PROBES}
        self.mismatches: list[str] = []
        self.matcher_calls = 0

    # Picture numbers: entries first (0..N-1), then negative-only pictures.
    def number(self, picture: Picture) -> int:
        return self.numbers[picture.name]

    def new_stream(self, kind: str, owner: int, transform: str, positive: bool) -> Stream:
        stream = Stream(len(self.streams), kind, owner, transform, positive)
        stream.policies = {m.name: StreamPolicy(self.policy) for m in METHODS}
        stream.decisions = {m.name: [] for m in METHODS}
        self.streams.append(stream)
        return stream

    def observe(self, frame: Frame, stream: Stream, rep: int, at: float) -> None:
        """Hash ``frame`` as production does, measure every probe, and run the policies."""
        number = len(self.frame_stream)
        self.frame_stream.append(stream.index)
        self.frame_rep.append(rep)
        hashes = frame_hashes(frame.luma, ALGOS, ROBUST)
        quality = next((h.quality for t, h in hashes if h.algo == "pdq" and not t), None)
        self.frame_quality.append(-1 if quality is None else quality)
        within = self._measure(hashes, stream)
        for method in METHODS:
            hit = np.zeros(len(self.names), bool)
            for probe in method.probes:
                hit |= within[probe.key]
            matches = self._matches(method, frame, stream, hit, number)
            self._decide(stream, method.name, matches, at)
        stream.last_at = at

    # -- the brute force ---------------------------------------------------------------

    def _measure(self, hashes: list[Lookup], stream: Stream) -> dict[str, np.ndarray]:
        """Per probe, which pictures have an entry within threshold of the frame, from the
        hashes the matcher would look up (not the featureless ones)."""
        wanted = looked_up(hashes, self.featureless)
        within: dict[str, np.ndarray] = {}
        for algo in ALGOS:
            looked = [
                (t, h) for (t, h), ok in zip(hashes, wanted, strict=True) if ok and h.algo == algo
            ]
            for robust in (False, True):
                chosen = looked if robust else [(t, h) for t, h in looked if not t]
                codes = np.frombuffer(b"".join(h.digest for _, h in chosen), np.uint8)
                codes = codes.reshape(len(chosen), ALGORITHMS[algo].bits // 8)
                for variants in (False, True):
                    probe = Probe(algo, robust, variants)
                    within[probe.key] = self._measure_probe(probe, chosen, codes, stream)
        return within

    def _measure_probe(
        self, probe: Probe, chosen: Sequence[Lookup], codes: np.ndarray, stream: Stream
    ) -> np.ndarray:
        """Record each picture's least distance to the frame's ``codes`` and, on a positive
        stream, how its own picture was found; return the pictures within threshold."""
        entries = self.sets[(probe.algo, probe.variants)]
        best, which, entry = min_distances(codes, entries, len(self.names))
        self.distances[probe.key].append(best.astype(np.int16))
        own = stream.owner if stream.positive else -1
        through = "-"
        if own >= 0 and which[own] >= 0:
            through = chosen[which[own]][0] or "as is"
            _, mark, suffix = entries.entries[entry[own]].id.partition(VARIANT_MARK)
            through += f" ~{suffix}" if mark else ""
        self.found_through[probe.key].append(through)
        return best <= self.thresholds[probe.algo]

    # -- the production path -----------------------------------------------------------

    def _matches(
        self, method: Method, frame: Frame, stream: Stream, hit: np.ndarray, number: int
    ) -> list[Match]:
        """What ``method``'s matcher finds in the frame, less the entries of a negative
        stream's own picture. A negative with no other picture within threshold by brute
        force is not looked up: the matcher would find nothing the policy may see."""
        owners = len(self.names)
        others = hit.copy()
        if 0 <= stream.owner < owners:
            others[stream.owner] = False
        if not stream.positive and not others.any():
            return []
        matches = self.matchers[method.name](frame)
        self.matcher_calls += 1
        self._check(method, matches, stream, hit, number)
        if not stream.positive:
            matches = [m for m in matches if owner_of(m.hit.entry.id, self.names) != stream.owner]
        return matches

    def _check(
        self, method: Method, matches: Sequence[Match], stream: Stream, hit: np.ndarray, number: int
    ) -> None:
        """Record a mismatch if the matcher and the brute force found different pictures."""
        found = np.zeros(len(self.names), bool)
        for match in matches:
            found[owner_of(match.hit.entry.id, self.names)] = True
        if not stream.positive and 0 <= stream.owner < len(self.names):
            found[stream.owner] = hit[stream.owner] = False
        if (found != hit).any():
            self.mismatches.append(
                f"{method.name} frame {number} ({stream.transform}): matcher found "
                f"{np.flatnonzero(found).tolist()}, "
                f"brute force {np.flatnonzero(hit).tolist()}"
            )

    def _decide(self, stream: Stream, method: str, matches: list[Match], at: float) -> None:
        decision = stream.policies[method].observe(matches, at)
        if decision is not None:
            own = owner_of(decision.match.hit.entry.id, self.names) == stream.owner
            stream.decisions[method].append((at, decision, own))

    def finish(self, stream: Stream) -> None:
        """Let the policies see the stream go on without matches until every window closed."""
        step = self.encoding.gop_s
        for k in range(1, math.ceil(self.policy.default.window_s / step) + 2):
            for method in METHODS:
                self._decide(stream, method.name, [], stream.last_at + k * step)

    # -- feeding frames ------------------------------------------------------------------

    def run_items(
        self,
        items: Sequence[tuple[Stream, np.ndarray]],
        bitrate_kind: str,
        gops_each: Callable[[Stream], int],
        workdir: Path,
    ) -> int:
        """Encode the items' frames (grouped by size, one clip per size) and observe them."""
        by_size: dict[tuple[int, int], list[tuple[Stream, np.ndarray]]] = defaultdict(list)
        for stream, rgb in items:
            by_size[(rgb.shape[1], rgb.shape[0])].append((stream, rgb))
        frames = 0
        for (width, height), group in by_size.items():
            bitrate = round(BITRATES[bitrate_kind] * width * height / REFERENCE_PIXELS)
            slots = [(s, rep) for s, _ in group for rep in range(gops_each(s))]
            pictures = [rgb for s, rgb in group for _ in range(gops_each(s))]
            clip = workdir / f"clip-{width}x{height}.mp4"
            corpus.encode_clip(clip, pictures, bitrate, 1, self.encoding)
            seen = 0
            for frame in corpus.keyframes(clip, f"eval-{width}x{height}"):
                index = round(frame.pts_s / self.encoding.gop_s)
                if index >= len(slots):
                    raise StreamguardError(f"{clip}: unexpected keyframe at {frame.pts_s:.3f} s")
                stream, rep = slots[index]
                self.observe(frame, stream, rep, rep * self.encoding.gop_s)
                seen += 1
            if seen != len(slots):
                raise StreamguardError(f"{clip}: {seen} keyframes decoded, {len(slots)} encoded")
            for stream, _ in group:
                self.finish(stream)
            clip.unlink()
            frames += seen
        return frames

    def run_footage(self, footage: Footage) -> int:
        owner = self.names.get(footage.source, -1) if footage.source else -1
        stream = self.new_stream("footage", owner, f"footage:{footage.name}", False)
        frames = 0
        for frame in corpus.keyframes(footage.path, f"footage-{footage.name}", footage.sampling):
            self.observe(frame, stream, frames, frame.pts_s)
            frames += 1
        self.finish(stream)
        return frames
