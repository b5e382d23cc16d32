"""Known videos: frames that line up in time decide; frames that do not stay below kill."""

import itertools
import random

import pytest

from streamguard.blocklist.memory import Hit
from streamguard.blocklist.metadata import EntryInfo
from streamguard.config.errors import ConfigError
from streamguard.config.policy import Policy
from streamguard.config.policy_table import parse_policy
from streamguard.detect.matcher import Match
from streamguard.detect.policy import StreamPolicy
from streamguard.detect.video import MAX_SPEED_CHANGE, TOLERANCE_S, VideoTracker, speeds
from streamguard.hashing import FrameHash
from streamguard.ingest.sampler import Frame


def frame_match(stream_s: float, video_s: float, distance: int = 24, video: str = "v1") -> Match:
    """A sample at ``stream_s`` matching the frame at ``video_s`` of ``video`` (weak: above
    the instant-kill distance, so no frame decides on its own)."""
    frame = Frame("cam", stream_s, stream_s, None, 854, 480)
    info = EntryInfo("pdq", f"{video}@{video_s}", "vpdq", "terror", "", video=video, ts=video_s)
    return Match(frame, FrameHash("pdq", b"", 90), Hit(info, distance, 31), stream_s)


def decide(samples: list[tuple[float, list[Match]]], policy: Policy | None = None):
    """(stream time, action, evidence) of each decision over the samples."""
    stream = StreamPolicy(policy or Policy())
    out = []
    for stream_s, matches in samples:
        decision = stream.observe(matches, stream_s, stream_s)
        if decision:
            out.append((stream_s, decision.action, decision.video))
    return out


def restream(start_s: float, speed: float, samples_at: list[float]) -> list:
    """A re-stream of v1 from ``start_s`` into it at ``speed``: each sample matches the
    listed frame (one per second) nearest its video time."""
    return [(t, [frame_match(t, float(round(start_s + speed * t)))]) for t in samples_at]


@pytest.mark.parametrize("speed", [0.9, 0.95, 1.0, 1.1])
@pytest.mark.parametrize("start_s", [0.0, 7.0, 431.0])
def test_a_restream_is_killed_on_aligned_weak_frames(speed, start_s):
    """No frame is strong, yet two samples two seconds apart that line up decide kill, at
    any offset into the video and any speed within 10 %."""
    samples = restream(start_s, speed, [0.0, 2.0, 4.0, 6.0, 8.0])
    decisions = decide(samples)
    assert [(t, action) for t, action, _ in decisions] == [(2.0, "kill")]
    video = decisions[-1][2]
    assert video.video == "v1" and video.frames_matched == 2 and video.coverage == 1.0
    assert abs(video.offset_s - (start_s + (speed - 1) * 2.0)) <= TOLERANCE_S


def test_frames_that_do_not_line_up_stay_below_kill():
    """Weak matches of one video's frames at scattered times confirm one another to a
    review, never a kill, however many there are."""
    rng = random.Random(7)
    times = [float(t) for t in range(0, 60, 2)]
    scattered = [(t, [frame_match(t, float(rng.randrange(0, 3600)))]) for t in times]
    actions = {action for _, action, _ in decide(scattered)}
    assert actions == {"review"}


def test_a_cut_keeps_the_evidence_of_both_sides():
    """Two samples before a cut, two after it: each side lines up on its own offset, and
    together they are four aligned frames."""
    before = [(t, [frame_match(t, 100.0 + t)]) for t in (0.0, 2.0)]
    after = [(t, [frame_match(t, 500.0 + t)]) for t in (4.0, 6.0)]
    stream = VideoTracker(30.0)
    evidence = [e for t, found in before + after for e in stream.observe(t, found)]
    assert evidence[-1].frames_matched == 4 and evidence[-1].window_s == 6.0


def test_coverage_counts_the_samples_that_did_not_match():
    """Three aligned matches among nine samples: a third of the span, below the default
    half: no kill, until the rule asks for less."""
    samples = []
    for t in range(0, 18, 2):
        found = [frame_match(float(t), 50.0 + t)] if t in (0, 8, 16) else []
        samples.append((float(t), found))
    assert all(action != "kill" for _, action, _ in decide(samples))
    lenient = parse_policy("policy", {"video_coverage": 0.3})
    assert decide(samples, lenient)[-1][1] == "kill"


def test_a_dense_run_is_not_hidden_by_a_longer_sparse_one():
    """Aligned samples at 8, 16, 22, 28 and 30 s cover 5 of 12 (0.42, below the default
    half), but 16 to 30 cover 4 of their 8 and decide (seen in bench_known_video: a 1.1x
    re-stream whose early keyframes fell between listed frames)."""
    aligned = {8.0, 16.0, 22.0, 28.0, 30.0, 32.0}
    samples = [
        (t, [frame_match(t, 95.0 + t)] if t in aligned else []) for t in map(float, range(8, 34, 2))
    ]
    three = parse_policy("policy", {"video_frames": 3})
    kills = [(t, video) for t, action, video in decide(samples, three) if action == "kill"]
    assert [t for t, _ in kills] == [30.0]
    assert kills[0][1].frames_matched == 4 and kills[0][1].coverage == 0.5
    assert kills[0][1].window_s == 14.0


def test_a_still_picture_matching_many_frames_counts_each_sample_once():
    """A still scene matches several listed frames: one sample is one frame matched."""
    samples = [(t, [frame_match(t, v) for v in (10.0, 11.0, 12.0)]) for t in (0.0, 2.0)]
    stream = VideoTracker(30.0)
    evidence = [e for t, found in samples for e in stream.observe(t, found)]
    assert evidence[-1].frames_matched == 2


def test_timestamps_going_back_start_over():
    """Stream times back by more than the window: a new broadcast, whose first match is a
    lone one again (the old ones would line up with nothing on screen now)."""
    stream = VideoTracker(10.0)
    for t in (100.0, 102.0):
        stream.observe(t, [frame_match(t, t)])
    assert stream.observe(0.0, [frame_match(0.0, 0.0)]) == []
    assert stream.observe(2.0, [frame_match(2.0, 2.0)])[0].frames_matched == 2


def test_a_reversed_restream_lines_up_too():
    samples = restream(300.0, -1.0, [0.0, 2.0, 4.0, 6.0])
    assert decide(samples)[-1][1] == "kill"


def test_speeds_cover_ten_percent_within_the_tolerance():
    tried = [speed for speed in speeds(30.0) if speed > 0]
    assert [-speed for speed in tried] == [speed for speed in speeds(30.0) if speed < 0]
    assert tried[0] == 1.0 and max(tried) == pytest.approx(1 + MAX_SPEED_CHANGE)
    assert min(tried) == pytest.approx(1 - MAX_SPEED_CHANGE)
    steps = sorted(tried)
    assert max(b - a for a, b in itertools.pairwise(steps)) * 30.0 <= TOLERANCE_S + 1e-9


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"video_coverage": 1.5}, "expected a number from 0 to 1"),
        ({"video_frames": 0}, "must be at least 1"),
        ({"video_window_s": -1}, "positive number of seconds"),
    ],
)
def test_video_keys_are_checked(table, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_policy("policy", table)
