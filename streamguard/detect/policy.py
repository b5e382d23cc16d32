"""What a stream's matches lead to: kill, review, or nothing yet.

Per category (docs/policy.md): a match counts if it is within ``max_distance`` and,
for PDQ, of at least ``min_quality``. A strong match (at most ``instant_distance``,
quality at least ``instant_quality``) is confirmed on its own; weaker ones need
``confirmations`` counted frames within ``window_s`` seconds, and so do matches
found through a flip, a rotation or a variant entry, however close. A confirmed match
decides ``action``. A weak match still unconfirmed when its window closes decides
``unconfirmed`` (review, or nothing). Matches of the ``review_only`` algorithms
(dHash by default) alone decide review at most. Matches of degenerate entries (loaded
with ``--allow-degenerate``) decide nothing: they only count toward an incident an
ordinary match opened.

Frames of a known video (entries with a video and a time) are decided on the video
(detect/video.py): ``video_frames`` samples whose matches line up in time, making up
``video_coverage`` of the samples in their span, decide ``action``, however weak each
match. Alone, such frames confirm one another to review at most: frames that resemble
a video's but do not line up must not kill. A strong one still decides on its own.

One decision per stream per incident: an incident starts with the first counted
match and ends after ``incident_gap_s`` without one. The exceptions: a review can
become a kill within the same incident, and a new broadcast (the publisher restarted)
is decided again.

A stream that sends nothing streamguard can look at (docs/sampling.md) decides
``unwatchable`` (review by default), once per incident of its own.
"""

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from streamguard.config.policy import Policy, Rule, RuleAction
from streamguard.detect.matcher import Match, strongest
from streamguard.detect.video import VideoEvidence, VideoTracker
from streamguard.events.schema import Action

_RANK: dict[Action | None, int] = {None: 0, Action.REVIEW: 1, Action.KILL: 2}


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    match: Match  # the evidence that made the decision: see StreamPolicy._evidence
    confirmations: int
    video: VideoEvidence | None = None  # decided on a known video's aligned frames


@dataclass
class _Pending:
    """Counted frames of one category in the current incident."""

    times: deque[float] = field(default_factory=deque)
    best: Match | None = None
    since: float = 0.0  # first counted frame not yet decided on
    decisive: Match | None = None  # the strongest counted match of an algorithm that may kill


class StreamPolicy:
    """The policy applied to one stream's frames, in arrival order."""

    def __init__(self, policy: Policy, overrides: Mapping[str, RuleAction] | None = None) -> None:
        """``overrides``: the action of each open incident's list (docs/incidents.md), a
        mapping the blocklist sync keeps current."""
        self.policy = policy
        self.overrides = {} if overrides is None else overrides
        self._pending: dict[str, _Pending] = {}
        self._decided: Action | None = None
        self._last_match_at: float | None = None
        self._last_unwatchable_at: float | None = None
        self._videos: dict[str, VideoTracker] = {}  # by category

    def unwatchable(self, at: float) -> Action | None:
        """The action a stream found unwatchable at ``at`` brings: the first report of an
        incident decides ``unwatchable``; reports within ``incident_gap_s`` of the last
        one belong to the same incident."""
        last, self._last_unwatchable_at = self._last_unwatchable_at, at
        if last is not None and at - last <= self.policy.incident_gap_s:
            return None
        action = self.policy.unwatchable
        return None if action == "ignore" else Action(action)

    def new_broadcast(self) -> None:
        """The publisher began a new broadcast (runtime/broadcast.py): a kill ended the
        one before, so what this one shows is decided again, however soon it came.
        Counted frames stay: a restart does not make weak matches seen before less real."""
        self._decided = None

    def observe(
        self, matches: list[Match], at: float, stream_s: float | None = None
    ) -> Decision | None:
        """The decision this frame (received at ``at``, at ``stream_s`` in the stream; ``at``
        if not given) brings, if any; frames without matches must be observed too: they end
        incidents, close windows and count toward a known video's coverage."""
        last = self._last_match_at
        if last is not None and at - last > self.policy.incident_gap_s:
            self._pending.clear()
            self._decided = None
            self._last_match_at = None
        counted = [m for m in matches if counts(self.policy.rule(m.hit.entry.category), m)]
        decisions = self._known_videos(counted, at if stream_s is None else stream_s)
        decisions += [self._confirm(c, found, at) for c, found in _by_category(counted).items()]
        decisions += [self._unconfirmed(category, at) for category in self._pending]
        return self._decide(decisions)

    def ended(self) -> Decision | None:
        """The decision the end of the stream brings (an upload's, which nothing follows):
        weak matches still unconfirmed decide ``unconfirmed`` now, not when their window
        would have closed."""
        return self._decide([self._unconfirmed(category, math.inf) for category in self._pending])

    def _decide(self, decisions: list[Decision | None]) -> Decision | None:
        """The strongest of ``decisions`` if it goes beyond what was decided already."""
        best = max((d for d in decisions if d), key=lambda d: _RANK[d.action], default=None)
        if best is None or _RANK[best.action] <= _RANK[self._decided]:
            return None
        self._decided = best.action
        return best

    def _confirm(self, category: str, found: list[Match], at: float) -> Decision | None:
        """Count this frame toward the category's incident; the decision it confirms.

        A degenerate entry is a few bits from a featureless picture's hash, and every frame
        that matches it is within its threshold of one too: such a match counts toward an
        incident an ordinary match opened, and does nothing else (it opens none, decides
        none, never is the match behind a decision nor makes the incident decisive).
        """
        rule = self.policy.rule(category)
        ordinary = [m for m in found if not m.hit.entry.degenerate]
        if not ordinary and category not in self._pending:
            return None
        self._last_match_at = at
        pending = self._pending.setdefault(category, _Pending(since=at))
        pending.times.append(at)
        while pending.times and pending.times[0] < at - rule.window_s:
            pending.times.popleft()
        if not ordinary:
            return None
        best = strongest(ordinary)
        if pending.best is None or strongest([best, pending.best]) is best:
            pending.best = best
        decisive = [m for m in ordinary if may_kill(rule, m)]
        if pending.decisive is not None:
            decisive.insert(0, pending.decisive)  # a tie keeps the earlier
        pending.decisive = strongest(decisive) if decisive else None
        count = len(pending.times)
        if any(strong(rule, m) for m in ordinary) or count >= rule.confirmations:
            action = Action(self._action(rule, ordinary)) if pending.decisive else Action.REVIEW
            return Decision(action, _evidence(rule, action, ordinary, pending), count)
        return None

    def _known_videos(self, counted: list[Match], stream_s: float) -> list[Decision | None]:
        """Decisions on known videos: every tracker sees every sample, so that coverage
        counts the samples that did not match."""
        frames = [m for m in counted if m.hit.entry.video and not m.hit.entry.degenerate]
        found = _by_category(frames)
        for category in found.keys() - self._videos.keys():
            rule = self.policy.rule(category)
            self._videos[category] = VideoTracker(rule.video_window_s, rule.video_coverage)
        decisions: list[Decision | None] = []
        for category, tracker in self._videos.items():
            rule = self.policy.rule(category)
            for evidence in tracker.observe(stream_s, found.get(category, [])):
                if evidence.frames_matched < rule.video_frames:
                    continue
                if evidence.coverage < rule.video_coverage:
                    continue
                decided_at = max(m.decided_at for m in found[category])
                match = replace(evidence.match, decided_at=decided_at)
                kill = match.hash.algo not in rule.review_only
                action = Action(self._action(rule, [match])) if kill else Action.REVIEW
                decisions.append(Decision(action, match, evidence.frames_matched, evidence))
        return decisions

    def _action(self, rule: Rule, found: list[Match]) -> RuleAction:
        """The rule's action, or for a match of an incident's list the incident's; kill
        if any of this frame's matches says so."""
        actions = {self.overrides.get(m.hit.entry.list, rule.action) for m in found}
        return "kill" if "kill" in actions else "review"

    def _unconfirmed(self, category: str, at: float) -> Decision | None:
        rule = self.policy.rule(category)
        pending = self._pending[category]
        if rule.unconfirmed != "review" or at < pending.since + rule.window_s:
            return None
        if pending.best is None or self._decided is not None:
            return None
        decision = Decision(Action.REVIEW, pending.best, len(pending.times))
        pending.best = None  # decided on: one review per incident
        return decision


def counts(rule: Rule, match: Match) -> bool:
    """Within the rule's distance for its algorithm, and of its quality if PDQ."""
    algo, quality = match.hash.algo, match.hash.quality
    limit = rule.max_distance.get(algo, match.hit.threshold)
    return match.hit.distance <= limit and (quality is None or quality >= rule.min_quality)


def may_kill(rule: Rule, match: Match) -> bool:
    """Whether frames confirming one another may kill on this match: not of a review-only
    algorithm, and not a known video's frame unless strong (a video is killed on frames
    that line up: ``_known_videos``)."""
    if match.hash.algo in rule.review_only:
        return False
    return not match.hit.entry.video or strong(rule, match)


def strong(rule: Rule, match: Match) -> bool:
    """Confirmed on its own. Never a match through a flip, rotation or variant entry
    (``Match.widened``): evasion resistance must not cost false kills."""
    limit = rule.instant_distance.get(match.hash.algo)
    quality = match.hash.quality
    return (
        limit is not None
        and not match.widened
        and match.hit.distance <= limit
        and (quality is None or quality >= rule.instant_quality)
    )


def _evidence(rule: Rule, action: Action, found: list[Match], pending: _Pending) -> Match:
    """The match a decision on this frame names (the event's ``match``): for a kill, one of
    an algorithm that may kill (a review-only match never kills on its own, so it must not
    be named as the reason); of those, one strong on its own if any (what an instant
    decision rests on); of those, the strongest. A kill whose decisive match came in an
    earlier frame of the incident names that match, stamped with this decision's time."""
    candidates = found
    if action is Action.KILL:
        candidates = [m for m in found if may_kill(rule, m)]
        if not candidates and pending.decisive is not None:
            decided_at = max(m.decided_at for m in found)
            candidates = [replace(pending.decisive, decided_at=decided_at)]
    confirmed = [m for m in candidates if strong(rule, m)]
    return strongest(confirmed or candidates)


def _by_category(matches: list[Match]) -> dict[str, list[Match]]:
    grouped: dict[str, list[Match]] = {}
    for match in matches:
        grouped.setdefault(match.hit.entry.category, []).append(match)
    return grouped
