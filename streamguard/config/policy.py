"""``[policy]``: what matches lead to, per category (docs/policy.md; detect/policy.py
applies it)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# The values the TOML file may give (the policy decides an events.schema.Action of them).
RuleAction = Literal["kill", "review"]  # what a confirmed match decides
Unconfirmed = Literal["review", "ignore"]  # what a match still unconfirmed at its window's end
UnwatchableAction = Literal["kill", "review", "ignore"]  # what an unwatchable stream decides
ACTIONS: tuple[RuleAction, ...] = ("kill", "review")
UNCONFIRMED: tuple[Unconfirmed, ...] = ("review", "ignore")
UNWATCHABLE: tuple[UnwatchableAction, ...] = ("kill", "review", "ignore")


@dataclass(frozen=True, slots=True)
class Rule:
    action: RuleAction = "kill"
    max_distance: Mapping[str, int] = field(default_factory=dict)  # default: index threshold
    min_quality: int = 50
    instant_distance: Mapping[str, int] = field(default_factory=lambda: {"pdq": 16})
    instant_quality: int = 80
    confirmations: int = 2
    window_s: float = 10.0
    unconfirmed: Unconfirmed = "review"
    # Algorithms whose matches alone decide review at most: dHash matched benign smooth
    # footage at distance 0 in the quality evaluation (docs/detection-quality.md).
    review_only: tuple[str, ...] = ("dhash",)
    # A known video (entries with a video and a time) is decided on frames that line up
    # (detect/video.py): this many samples, this share of the samples in their span,
    # within this much stream time. Its frames alone, unless strong, decide review at most.
    video_frames: int = 2
    video_coverage: float = 0.5
    video_window_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Policy:
    default: Rule = field(default_factory=Rule)
    categories: Mapping[str, Rule] = field(default_factory=dict)
    incident_gap_s: float = 30.0
    keep_watching_after_kill: bool = False
    still_live_after_s: float = 30.0  # 0: killed streams are not looked at again
    unwatchable: UnwatchableAction = "review"

    def rule(self, category: str) -> Rule:
        return self.categories.get(category, self.default)
