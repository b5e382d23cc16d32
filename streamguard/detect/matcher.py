"""Hash a sampled frame and look its hashes up in the blocklist.

Besides the frame as it is, two cheap steps recover common evasions before
matching (docs/detection-quality.md): the frame without letterbox, pillarbox or
padding bars (``borders``), and PDQ in its eight flips and quarter turns from one
DCT (``dihedral``). A match records the step that found it in ``transform``.

Not every hash is looked up: PDQ of quality below 50 and pHash/dHash with too few
stable bits carry too little of the picture (hashing/__init__.py), and a hash within
threshold of a featureless picture's (black, white, a slate, a fade, a gradient) would
match the degenerate entries a careless list holds (blocklist/degenerate.py).
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from streamguard.blocklist.degenerate import Featureless
from streamguard.blocklist.memory import Blocklist, Hit
from streamguard.blocklist.variants import VARIANT_MARK
from streamguard.config.model import Robustness
from streamguard.detect.recent import RecentFrame, RecentHashes
from streamguard.events.schema import Action, Event, Evidence, FrameSeen, VideoMatch
from streamguard.hashing import FrameHash, hash_luma
from streamguard.hashing.borders import inner_boxes, inner_pictures
from streamguard.hashing.pdq import (
    DIHEDRAL,
    MIN_QUALITY,
    pdq_dihedral,
    pdq_dihedral_rgb,
    pdq_hash,
    pdq_hash_rgb,
)
from streamguard.hashing.picture import Picture
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.sampler import Frame
from streamguard.observability import metrics

Source = TypeVar("Source")  # what a view's PDQ is computed from: its luma, or its RGB
ROBUST = Robustness()
PLAIN = Robustness(borders=False, dihedral=False)


def frame_hashes(
    luma: Luma, algos: Iterable[str], robustness: Robustness = ROBUST
) -> list[tuple[str, FrameHash]]:
    """Every hash the production path looks up for this picture, with the transform
    that produced it: '' for the picture as is, 'borders', a PDQ orientation such as
    'flipy' or 'rotate90', or both ('borders+flipy'); 'borders-even' is the guess with
    even bars (hashing/borders.py)."""
    views = [("", luma)]
    if robustness.borders:
        for name, inner in inner_pictures(luma.pixels):
            views.append((name, Luma(np.ascontiguousarray(inner), luma.studio_range, luma.video)))

    def pdq(view: Luma, turned: bool) -> tuple[list[bytes], int]:
        if turned:
            return pdq_dihedral(view)
        digest, quality = pdq_hash(view)
        return [digest], quality

    return _view_hashes([(n, v, v) for n, v in views], algos, robustness.dihedral, pdq)


def picture_hashes(
    picture: Picture, algos: Iterable[str], robustness: Robustness = ROBUST
) -> list[tuple[str, FrameHash]]:
    """``frame_hashes`` of a still picture, whose PDQ is the reference's bit for bit
    (hashing/picture.py): the hash a shared list holds of the same file, and its flips
    and turns from the reference's one DCT at full size."""
    views = [("", picture)]
    if robustness.borders:
        boxes = inner_boxes(picture.luma.pixels)
        views += [(name, picture.crop(rows, cols)) for name, (rows, cols) in boxes]

    def pdq(rgb: np.ndarray, turned: bool) -> tuple[list[bytes], int]:
        if turned:
            return pdq_dihedral_rgb(rgb)
        digest, quality = pdq_hash_rgb(rgb)
        return [digest], quality

    parts = [(name, view.luma, view.rgb) for name, view in views]
    return _view_hashes(parts, algos, robustness.dihedral, pdq)


def _view_hashes(
    views: list[tuple[str, Luma, Source]],
    algos: Iterable[str],
    turned: bool,
    pdq: Callable[[Source, bool], tuple[list[bytes], int]],
) -> list[tuple[str, FrameHash]]:
    """The hashes of each named view (its luma, and what ``pdq`` hashes of it): PDQ in
    the eight orientations if ``turned``, else as it is; pHash and dHash as it is."""
    algos = list(algos)
    others = [algo for algo in algos if algo != "pdq"]
    hashes = []
    for view, luma, source in views:
        if "pdq" in algos:
            digests, quality = pdq(source, turned)
            for orientation, digest in zip(DIHEDRAL[: len(digests)], digests, strict=True):
                name = "+".join(step for step in (view, orientation) if step)
                hashes.append((name, FrameHash("pdq", digest, quality)))
        hashes += [(view, frame_hash) for frame_hash in hash_luma(luma, others)]
    return hashes


def looked_up(hashes: list[tuple[str, FrameHash]], featureless: Featureless) -> list[bool]:
    """Whether each of a frame's hashes (``frame_hashes``) is looked up in the blocklist."""
    near = featureless.of([h.algo for _, h in hashes], [h.digest for _, h in hashes])
    return [h.matchable and not n for (_, h), n in zip(hashes, near.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class Match:
    """A frame whose hash is within threshold of a blocklist entry."""

    frame: Frame
    hash: FrameHash
    hit: Hit
    decided_at: float
    transform: str = ""  # how the frame was looked at: see frame_hashes

    @property
    def latency_s(self) -> float:
        """From reading the frame's packet to the decision."""
        return self.decided_at - self.frame.received_at

    def evidence(self) -> Evidence:
        """What was matched, as events and ``scan --json`` give it."""
        hit = self.hit
        return Evidence(
            algo=self.hash.algo,
            distance=hit.distance,
            threshold=hit.threshold,
            quality=self.hash.quality,
            entry_id=hit.entry.id,
            list=hit.entry.list,
            category=hit.entry.category,
            label=hit.entry.label,
        )

    def event(
        self,
        action: Action,
        *,
        stream_url: str,
        worker_id: str,
        confirmations: int = 1,
        video: VideoMatch | None = None,
        broadcast_ms: int = 0,
    ) -> Event:
        """The event deciding ``action`` on this match; ``stream_url`` already redacted,
        ``broadcast_ms`` the broadcast's agreed name (runtime/broadcast.py)."""
        frame = self.frame
        return Event(
            action=action,
            stream_id=frame.stream_id,
            stream_url=stream_url,
            worker_id=worker_id,
            frame=FrameSeen(frame.pts_s, frame.received_at, frame.width, frame.height),
            detected_at=self.decided_at,
            broadcast_ms=broadcast_ms,
            match=self.evidence(),
            confirmations=confirmations,
            video=video,
        )

    @property
    def widened(self) -> bool:
        """Found through a flip or rotation, or a variant entry: more ways to match by
        chance, so the policy wants it confirmed (borders only remove bars)."""
        turned = any(step in DIHEDRAL for step in self.transform.split("+") if step)
        return turned or VARIANT_MARK in self.hit.entry.id


def strongest(matches: list[Match]) -> Match:
    """The match closest to its entry relative to its threshold (algorithms differ in bits)."""
    return min(matches, key=lambda match: match.hit.distance / max(match.hit.threshold, 1))


@dataclass(slots=True)
class MatchStats:
    frames: int = 0
    low_quality: int = 0  # PDQ quality below 50
    featureless: int = 0  # not looked up for another reason (see the module docstring)
    matches: int = 0


class FrameMatcher:
    """Computes only the hashes the blocklist has entries for.

    What it does is counted in ``stats`` and, if ``metered``, in the service's Prometheus
    metrics; the evaluation harness runs it unmetered, so that its made-up frames never
    show as the service's."""

    def __init__(
        self,
        blocklist: Blocklist,
        *,
        robustness: Robustness = ROBUST,
        clock: Callable[[], float] = time.time,
        metered: bool = True,
        recent: RecentHashes | None = None,
    ) -> None:
        """``recent``: where each frame's own matchable PDQ is kept (incident mode)."""
        self.blocklist = blocklist
        self.recent = recent
        self.robustness = robustness
        self.stats = MatchStats()
        self._clock = clock
        self._metered = metered

    def __call__(self, frame: Frame) -> list[Match]:
        """The entries this frame matches, each once, through its closest transform."""
        started = time.perf_counter()
        hashes = frame_hashes(frame.luma, self.blocklist.algos, self.robustness)
        matches = self.match_hashes(frame, hashes)
        if self._metered:
            metrics.HASH_DURATION.observe(time.perf_counter() - started)
        return matches

    def match_hashes(self, frame: Frame, hashes: list[tuple[str, FrameHash]]) -> list[Match]:
        """The entries ``hashes`` (of ``frame``, as ``frame_hashes`` gives them) match,
        each once, through its closest transform; hashes too weak or too near a
        featureless picture are not looked up."""
        self.stats.frames += 1
        best: dict[tuple[str, str, str], Match] = {}
        lookups = looked_up(hashes, self.blocklist.featureless)
        if self.recent is not None:
            self._remember(self.recent, frame, hashes, lookups)
        for (transform, frame_hash), wanted in zip(hashes, lookups, strict=True):
            if not wanted:
                if not transform:
                    self._skipped(frame_hash)
                continue
            hits = self.blocklist.search(frame_hash.algo, frame_hash.digest)
            if not hits:
                continue
            decided_at = self._clock()
            for hit in hits:
                key = (frame_hash.algo, hit.entry.list, hit.entry.id)
                known = best.get(key)
                if known is None or hit.distance < known.hit.distance:
                    best[key] = Match(frame, frame_hash, hit, decided_at, transform)
        matches = list(best.values())
        self.stats.matches += len(matches)
        if self._metered:
            for match in matches:
                metrics.MATCHES.labels(match.hash.algo, match.hit.entry.category).inc()
        return matches

    def _remember(
        self,
        recent: RecentHashes,
        frame: Frame,
        hashes: list[tuple[str, FrameHash]],
        lookups: list[bool],
    ) -> None:
        """Keep the frame's own PDQ in ``recent`` if it would be looked up. Computed here
        only when the blocklist has no PDQ entries (one plain PDQ, no transforms)."""
        pairs = zip(hashes, lookups, strict=True)
        own = next(((h, w) for (t, h), w in pairs if not t and h.algo == "pdq"), None)
        if own is None:
            plain = [("", h) for h in hash_luma(frame.luma, ["pdq"])]
            own = (plain[0][1], looked_up(plain, self.blocklist.featureless)[0])
        pdq, wanted = own
        if wanted and pdq.quality is not None:
            recent.add(
                RecentFrame(
                    frame.pts_s,
                    frame.received_at,
                    pdq.digest,
                    pdq.quality,
                    frame.width,
                    frame.height,
                    frame.broadcast_ms,
                )
            )

    def _skipped(self, frame_hash: FrameHash) -> None:
        """Count a frame whose own hash (not a transform's) was not looked up."""
        if frame_hash.quality is not None and frame_hash.quality < MIN_QUALITY:
            self.stats.low_quality += 1
            if self._metered:
                metrics.FRAMES_LOW_QUALITY.inc()
        else:
            self.stats.featureless += 1
            if self._metered:
                metrics.FRAMES_FEATURELESS.labels(frame_hash.algo).inc()
