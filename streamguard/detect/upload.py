"""Uploads matched as streams are: a picture, a video's sampled frames, or a hash a
platform computed on its side (``streamguard api``, docs/api.md).

The same blocklist, robustness and policy as ``run``: a picture is one frame whose own
PDQ is the reference's (the hash a shared list holds of the same file), a video's frames
are decided in order, on their stream time, and known videos are aligned as a live
stream's are. An upload has an end, which a live stream has not: weak matches still
unconfirmed there decide the policy's ``unconfirmed`` at once (``StreamPolicy.ended``).
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from streamguard.blocklist.memory import Blocklist
from streamguard.config.model import Robustness
from streamguard.config.policy import Policy, RuleAction
from streamguard.detect.matcher import (
    ROBUST,
    FrameMatcher,
    Match,
    frame_hashes,
    picture_hashes,
)
from streamguard.detect.policy import Decision, StreamPolicy
from streamguard.detect.video import VideoEvidence, VideoTracker
from streamguard.hashing import FrameHash
from streamguard.hashing.picture import Picture
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.sampler import Frame

_NO_PICTURE = Luma(np.zeros((0, 0), np.uint8))  # a hash sent without its picture


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an upload matched and what the policy decides on it."""

    matches: list[Match]  # each entry once, at its closest sample, in upload order
    decision: Decision | None
    videos: dict[str, VideoEvidence]  # per known video: the most samples aligned
    samples: int  # frames looked at
    featureless: int  # of those, not looked up: too weak or near a featureless picture


class UploadMatcher:
    """Matches uploads against ``blocklist`` under ``policy``; ``overrides`` are the open
    incidents' actions (docs/incidents.md), kept current by the blocklist sync."""

    def __init__(
        self,
        blocklist: Blocklist,
        policy: Policy,
        overrides: Mapping[str, RuleAction] | None = None,
        *,
        robustness: Robustness = ROBUST,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.blocklist = blocklist
        self.policy = policy
        self.overrides = overrides
        self.robustness = robustness
        self._clock = clock

    def picture(self, picture: Picture, name: str) -> Verdict:
        height, width = picture.shape
        frame = Frame(name, 0.0, self._clock(), picture.luma, width, height)
        hashes = picture_hashes(picture, self.blocklist.algos, self.robustness)
        return self._scan([(frame, hashes)])

    def hashes(self, hashes: list[FrameHash], name: str) -> Verdict:
        """Hashes of one picture a platform computed (its quality unknown unless given)."""
        frame = Frame(name, 0.0, self._clock(), _NO_PICTURE, 0, 0)
        return self._scan([(frame, [("", frame_hash) for frame_hash in hashes])])

    def frames(self, frames: Iterable[Frame]) -> Verdict:
        """A video's sampled frames, in order, hashed as a stream's are."""
        algos, robustness = self.blocklist.algos, self.robustness
        return self._scan((frame, frame_hashes(frame.luma, algos, robustness)) for frame in frames)

    def _scan(self, samples: Iterable[tuple[Frame, list[tuple[str, FrameHash]]]]) -> Verdict:
        matcher = FrameMatcher(self.blocklist, metered=False, clock=self._clock)
        policy = StreamPolicy(self.policy, self.overrides)
        rule = self.policy.default  # the evidence shown; decisions use each category's
        videos: VideoTracker | None = None  # from the first known-video match on
        closest: dict[tuple[str, str, str], Match] = {}
        decision = None
        for frame, hashes in samples:
            matches = matcher.match_hashes(frame, hashes)
            for match in matches:
                key = (match.hash.algo, match.hit.entry.list, match.hit.entry.id)
                if key not in closest or match.hit.distance < closest[key].hit.distance:
                    closest[key] = match
            known = [m for m in matches if m.hit.entry.video and not m.hit.entry.degenerate]
            if known and videos is None:
                videos = VideoTracker(rule.video_window_s, rule.video_coverage)
            if videos is not None:
                videos.observe(frame.pts_s, known)
            decision = policy.observe(matches, frame.pts_s, frame.pts_s) or decision
        decision = policy.ended() or decision
        stats = matcher.stats
        return Verdict(
            sorted(closest.values(), key=lambda m: (m.frame.pts_s, m.hit.distance)),
            decision,
            videos.best if videos else {},
            stats.frames,
            stats.low_quality + stats.featureless,
        )
