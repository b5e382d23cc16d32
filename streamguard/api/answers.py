"""Verdicts as the API's JSON, and counted as they go out."""

from typing import Any

from streamguard.detect.matcher import Match
from streamguard.detect.upload import Verdict
from streamguard.observability import metrics


def verdict_json(verdict: Verdict, *, times: bool) -> dict[str, Any]:
    """``{"matches": [...], "decision": ...}``; ``times``: each match's time in the upload
    (a video's)."""
    count(verdict)
    decision = verdict.decision
    return {
        "matches": [_match_json(match, verdict, times) for match in verdict.matches],
        "decision": decision.action.value if decision else None,
    }


def hash_verdict_json(verdict: Verdict) -> dict[str, Any]:
    """A looked-up hash's answer: ``looked_up`` is false for a hash too weak or too near a
    featureless picture to be matched at all (a black frame's)."""
    return {**verdict_json(verdict, times=False), "looked_up": verdict.featureless == 0}


def count(verdict: Verdict) -> None:
    for match in verdict.matches:
        metrics.API_MATCHES.labels(match.hash.algo, match.hit.entry.category).inc()
    decision = verdict.decision
    metrics.API_DECISIONS.labels(decision.action.value if decision else "none").inc()


def _match_json(match: Match, verdict: Verdict, times: bool) -> dict[str, Any]:
    answer = match.evidence().to_json()
    answer["transform"] = match.transform
    if times:
        answer["pts_s"] = round(match.frame.pts_s, 3)
    evidence = verdict.videos.get(match.hit.entry.video)
    if evidence is not None:
        answer["video"] = evidence.summary().to_json()
    return answer
