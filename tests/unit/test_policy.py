"""Decisions: strong matches kill at once, weak ones confirm or go to review, one per incident."""

from typing import get_args

import pytest

from streamguard.blocklist.memory import Hit
from streamguard.blocklist.metadata import EntryInfo
from streamguard.config.errors import ConfigError as PolicyError
from streamguard.config.policy import (
    ACTIONS,
    UNCONFIRMED,
    UNWATCHABLE,
    Policy,
    Rule,
    RuleAction,
    Unconfirmed,
    UnwatchableAction,
)
from streamguard.config.policy_table import parse_policy
from streamguard.detect.matcher import Match
from streamguard.detect.policy import StreamPolicy
from streamguard.events.schema import Action
from streamguard.hashing import FrameHash
from streamguard.ingest.sampler import Frame


def match(
    distance: int,
    at: float,
    *,
    algo="pdq",
    quality=90,
    category="csam",
    entry="e1",
    degenerate=False,
):
    frame = Frame("cam", at, at, None, 1280, 720)
    info = EntryInfo(algo, entry, "l", category, "", degenerate)
    hit = Hit(info, distance, 31 if algo == "pdq" else 10)
    return Match(frame, FrameHash(algo, b"", quality if algo == "pdq" else None), hit, at)


def run(policy: Policy, frames: list[tuple[float, list[Match]]]) -> list[tuple[float, str, int]]:
    stream = StreamPolicy(policy)
    decided = []
    for at, matches in frames:
        decision = stream.observe(matches, at)
        if decision:
            decided.append((at, decision.action, decision.confirmations))
    return decided


def test_strong_match_kills_on_one_frame_and_once_per_incident():
    frames = [(t, [match(3, t)]) for t in (0.0, 2.0, 4.0)]
    assert run(Policy(), frames) == [(0.0, "kill", 1)]


def test_weak_match_needs_confirmation_within_the_window():
    weak = [(0.0, [match(25, 0.0)]), (2.0, []), (4.0, [match(28, 4.0)])]
    assert run(Policy(), weak) == [(4.0, "kill", 2)]
    too_far = [(0.0, [match(25, 0.0)]), (12.0, [match(25, 12.0)])]
    assert run(Policy(), too_far)[0][1] == "review"  # window closed unconfirmed first


def test_unconfirmed_weak_match_goes_to_review_when_its_window_closes():
    frames = [(0.0, [match(25, 0.0)]), *[(t, []) for t in (2.0, 4.0, 6.0, 8.0, 10.0, 12.0)]]
    assert run(Policy(), frames) == [(10.0, "review", 1)]
    ignore = Policy(default=Rule(unconfirmed="ignore"))
    assert run(ignore, frames) == []


def test_the_end_of_an_upload_decides_its_unconfirmed_matches_at_once():
    stream = StreamPolicy(Policy())
    assert stream.observe([match(25, 0.0)], 0.0) is None  # weak: waits for confirmation
    ended = stream.ended()
    assert ended is not None and (ended.action, ended.confirmations) == ("review", 1)
    assert stream.ended() is None  # decided once
    ignore = StreamPolicy(Policy(default=Rule(unconfirmed="ignore")))
    ignore.observe([match(25, 0.0)], 0.0)
    assert ignore.ended() is None
    killed = StreamPolicy(Policy())
    assert killed.observe([match(3, 0.0)], 0.0) is not None
    assert killed.ended() is None  # nothing beyond the kill


def test_review_escalates_to_kill_but_not_back():
    frames = [
        (0.0, [match(25, 0.0)]),
        (10.0, []),
        (12.0, [match(2, 12.0)]),
        (14.0, [match(25, 14)]),
    ]
    assert run(Policy(), frames) == [(10.0, "review", 1), (12.0, "kill", 1)]


def test_a_new_incident_after_the_gap_decides_again():
    frames = [(0.0, [match(2, 0.0)]), (20.0, []), (40.0, [match(2, 40.0)])]
    assert run(Policy(incident_gap_s=30), frames) == [(0.0, "kill", 1), (40.0, "kill", 1)]


def test_a_new_broadcast_is_decided_again_within_the_incident_gap():
    """A publisher killed, restarting at once and showing the same picture: a kill of
    its own, not the incident before (it would air on, undecided, while it kept it)."""
    stream = StreamPolicy(Policy(incident_gap_s=30))
    assert stream.observe([match(2, 0.0)], 0.0) is not None
    assert stream.observe([match(2, 2.0)], 2.0) is None  # same broadcast, same incident
    stream.new_broadcast()
    again = stream.observe([match(2, 3.0)], 3.0)
    assert again is not None and again.action == "kill"
    # weak matches counted before the restart still confirm one after it
    weak = StreamPolicy(Policy())
    assert weak.observe([match(25, 0.0)], 0.0) is None
    weak.new_broadcast()
    confirmed = weak.observe([match(25, 2.0)], 2.0)
    assert confirmed is not None and (confirmed.action, confirmed.confirmations) == ("kill", 2)


def test_low_quality_and_far_matches_do_not_count():
    policy = Policy(default=Rule(max_distance={"pdq": 20}, min_quality=60))
    frames = [(0.0, [match(2, 0.0, quality=40)]), (2.0, [match(22, 2.0)]), (30.0, [])]
    assert run(policy, frames) == []


def test_phash_never_kills_on_one_frame_by_default():
    frames = [(0.0, [match(0, 0.0, algo="phash")]), (2.0, [match(1, 2.0, algo="phash")])]
    assert run(Policy(), frames) == [(2.0, "kill", 2)]


def test_categories_have_their_own_rules_and_the_strongest_decision_wins():
    policy = parse_policy("[policy]", {"terror": {"action": "review"}})
    frames = [(0.0, [match(2, 0.0, category="terror"), match(2, 0.0, category="csam", entry="x")])]
    assert run(policy, frames) == [(0.0, "kill", 1)]
    assert run(policy, [(0.0, [match(2, 0.0, category="terror")])]) == [(0.0, "review", 1)]


def test_parse_policy_defaults_and_overrides():
    policy = parse_policy(
        "[policy]",
        {
            "confirmations": 3,
            "instant_distance": {"pdq": 10},
            "keep_watching_after_kill": True,
            "incident_gap_s": 60,
            "Terror": {"action": "review", "window_s": 20},
        },
    )
    assert policy.default.confirmations == 3 and policy.keep_watching_after_kill
    terror = policy.rule("terror")
    assert (terror.action, terror.window_s, terror.confirmations) == ("review", 20.0, 3)
    assert terror.instant_distance == {"pdq": 10} and policy.incident_gap_s == 60.0
    assert policy.rule("other") is policy.default


def test_the_actions_the_file_may_give_are_the_events_actions():
    """[policy] values are Literals (config reads them), decisions are Actions (events)."""
    assert get_args(RuleAction) == ACTIONS and get_args(Unconfirmed) == UNCONFIRMED
    assert get_args(UnwatchableAction) == UNWATCHABLE
    assert {*ACTIONS, *UNWATCHABLE} - {"ignore"} == {str(action) for action in Action}
    for unwatchable in UNWATCHABLE:
        decided = StreamPolicy(Policy(unwatchable=unwatchable)).unwatchable(at=0.0)
        assert decided is (None if unwatchable == "ignore" else Action(unwatchable))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"action": "ban"}, r"\[policy\]\.action: expected one of kill, review"),
        ({"csam": {"confirmations": 0}}, r"\[policy\]\.csam\.confirmations: must be at least 1"),
        ({"instant_distance": 3}, r"instant_distance: expected \{ ALGO = bits \}"),
        ({"instant_distance": {"md5": 3}}, r"instant_distance\.md5: unknown algorithm 'md5'"),
        ({"max_distance": {"pdq": -1}}, r"max_distance\.pdq: pdq distance -1 is out of range"),
        (
            {"max_distance": {"pdq": 200}},
            r"\[policy\]\.max_distance\.pdq: pdq distance 200 is out of range: 0 to 128",
        ),
        (
            {"csam": {"instant_distance": {"phash": 33}}},
            r"\.csam\.instant_distance\.phash: phash distance 33 is out of range: 0 to 32",
        ),
        ({"speed": 3}, r"unknown key\(s\) speed"),
        ({"window_s": -1}, r"window_s: expected a positive number"),
    ],
)
def test_bad_policy_settings_name_the_key(table, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy("[policy]", table)


@pytest.mark.parametrize(
    ("transform", "entry", "decided"),
    [
        ("borders", "e1", [(0.0, "kill", 1)]),  # bars removed: the content itself matched
        ("flipy", "e1", [(2.0, "kill", 2)]),  # a mirror image: confirmed on a second frame
        ("", "e1~crop5", [(2.0, "kill", 2)]),  # a variant entry: the same
    ],
)
def test_widened_matches_are_never_confirmed_on_one_frame(transform, entry, decided):
    def widened(at: float) -> Match:
        plain = match(0, at, entry=entry)
        return Match(plain.frame, plain.hash, plain.hit, at, transform)

    assert run(Policy(), [(0.0, [widened(0.0)]), (2.0, [widened(2.0)])]) == decided


def test_degenerate_entries_only_confirm_what_an_ordinary_match_opened():
    """Loaded with --allow-degenerate: however close and clear, their matches alone decide
    nothing, not even a review; within an incident they count as confirmations."""
    alone = [(t, [match(0, t, quality=100, degenerate=True)]) for t in (0.0, 2.0, 4.0, 20.0)]
    assert run(Policy(), alone) == []
    three = Policy(default=Rule(confirmations=3))
    weak = [(0.0, [match(25, 0.0)]), (2.0, []), (4.0, [match(25, 4.0)])]
    assert run(three, weak) == []
    confirmed = [weak[0], (2.0, [match(0, 2.0, degenerate=True, entry="d")]), weak[2]]
    assert run(three, confirmed) == [(4.0, "kill", 3)]


def test_dhash_alone_decides_review_at_most():
    dhash_only = [(t, [match(0, t, algo="dhash")]) for t in (0.0, 2.0)]
    assert run(Policy(), dhash_only) == [(2.0, "review", 2)]
    with_pdq = [(0.0, [match(0, 0.0, algo="dhash")]), (2.0, [match(25, 2.0)])]
    assert run(Policy(), with_pdq) == [(2.0, "kill", 2)]
    anything = parse_policy("policy", {"review_only": []})
    assert run(anything, dhash_only) == [(2.0, "kill", 2)]


def decisions(policy: Policy, frames: list[tuple[float, list[Match]]]) -> list:
    stream = StreamPolicy(policy)
    return [d for at, matches in frames if (d := stream.observe(matches, at))]


def named(decision) -> tuple[str, str, int, float]:
    """What the event's ``match`` object says: action, algo, distance, frame time."""
    found = decision.match
    return decision.action, found.hash.algo, found.hit.distance, found.frame.pts_s


def test_an_instant_kill_names_the_match_strong_on_its_own():
    # pHash d=0 is closer relative to its threshold, but only PDQ d=2 may kill on one frame
    frame = [match(2, 0.0), match(0, 0.0, algo="phash", entry="e2")]
    assert [named(d) for d in decisions(Policy(), [(0.0, frame)])] == [("kill", "pdq", 2, 0.0)]
    # a mirror image at distance 0 is not strong on its own (widened): the plain match is
    mirrored = match(0, 0.0, entry="e2")
    mirrored = Match(mirrored.frame, mirrored.hash, mirrored.hit, 0.0, "flipy")
    (decision,) = decisions(Policy(), [(0.0, [mirrored, match(12, 0.0)])])
    assert named(decision) == ("kill", "pdq", 12, 0.0) and decision.match.transform == ""


def test_a_confirmed_kill_names_a_match_of_an_algorithm_that_may_kill():
    frames = [
        (0.0, [match(0, 0.0, algo="dhash")]),
        (2.0, [match(0, 2.0, algo="dhash"), match(25, 2.0)]),
    ]
    assert [named(d) for d in decisions(Policy(), frames)] == [("kill", "pdq", 25, 2.0)]
    # of several decisive ones, the strongest relative to its threshold
    frames = [(0.0, [match(28, 0.0)]), (2.0, [match(25, 2.0), match(3, 2.0, algo="phash")])]
    assert [named(d) for d in decisions(Policy(), frames)] == [("kill", "phash", 3, 2.0)]


def test_a_kill_confirmed_by_review_only_evidence_names_the_earlier_decisive_match():
    frames = [(0.0, [match(25, 0.0)]), (2.0, [match(0, 2.0, algo="dhash")])]
    (decision,) = decisions(Policy(), frames)
    assert named(decision) == ("kill", "pdq", 25, 0.0)  # the frame that showed it
    assert decision.match.decided_at == 2.0  # but decided when the kill was


def test_reviews_name_the_strongest_match():
    dhash_only = [
        (t, [match(4, t, algo="dhash"), match(1, t, algo="dhash", entry="e2")]) for t in (0.0, 2.0)
    ]
    assert [named(d) for d in decisions(Policy(), dhash_only)] == [("review", "dhash", 1, 2.0)]
    to_review = Policy(default=Rule(action="review"))
    frame = [match(2, 0.0), match(0, 0.0, algo="phash", entry="e2")]
    assert [named(d) for d in decisions(to_review, [(0.0, frame)])] == [("review", "pdq", 2, 0.0)]
