"""Decisions: strong matches kill at once, weak ones confirm or go to review, one per incident."""

import pytest

from streamguard.blocklist.memory import Hit
from streamguard.blocklist.metadata import EntryInfo
from streamguard.detect.matcher import Match
from streamguard.detect.policy import Policy, PolicyError, Rule, StreamPolicy, parse_policy
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


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"action": "ban"}, r"\[policy\]\.action: expected one of kill, review"),
        ({"csam": {"confirmations": 0}}, r"\[policy\]\.csam\.confirmations: must be at least 1"),
        ({"instant_distance": {"md5": 3}}, r"instant_distance: expected \{ ALGO = bits \}"),
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
