"""Incident mode's pure parts: the ring of recent hashes, what the matcher keeps in it,
request checking, entries and the vPDQ signal line, and the policy's incident override."""

import json

import numpy as np
import pytest

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.incidents import (
    Incident,
    IncidentFrame,
    entry_ids,
    incident_entries,
    vpdq_signal,
)
from streamguard.blocklist.memory import Blocklist, Hit
from streamguard.blocklist.metadata import EntryInfo
from streamguard.config import load_file
from streamguard.config.errors import ConfigError
from streamguard.config.policy import Policy
from streamguard.detect.matcher import FrameMatcher, Match
from streamguard.detect.policy import StreamPolicy
from streamguard.detect.recent import RecentFrame, RecentHashes
from streamguard.events.schema import Action
from streamguard.hashing import FrameHash, Luma
from streamguard.ingest.sampler import Frame
from streamguard.runtime.incident_requests import open_request


def kept(pts_s: float) -> RecentFrame:
    return RecentFrame(pts_s, 1000.0 + pts_s, bytes(32), 90, 640, 360)


def test_ring_keeps_the_last_seconds_and_at_most_its_count():
    ring = RecentHashes(max_s=10.0, max_frames=100)
    for step in range(30):
        ring.add(kept(step * 1.0))
    assert [f.pts_s for f in ring.last(60)] == [19.0 + s for s in range(11)]  # capped at max_s
    assert [f.pts_s for f in ring.last(2.5)] == [27.0, 28.0, 29.0]
    small = RecentHashes(max_s=100.0, max_frames=4)
    for step in range(10):
        small.add(kept(float(step)))
    assert len(small) == 4 and small.last(100)[0].pts_s == 6.0


def test_ring_starts_afresh_when_stream_time_runs_backwards():
    ring = RecentHashes(max_s=120.0, max_frames=100)
    for pts_s in (50.0, 51.0, 52.0, 0.5, 1.5):
        ring.add(kept(pts_s))
    assert [f.pts_s for f in ring.last(120)] == [0.5, 1.5]


def textured(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (36, 64), dtype=np.uint8), np.ones((10, 10), np.uint8))


def frame_of(pixels: np.ndarray, pts_s: float = 1.0) -> Frame:
    height, width = pixels.shape
    return Frame("s", pts_s, 0.0, Luma(pixels), width, height)


@pytest.mark.parametrize("algos", [["pdq"], ["phash"]])
def test_matcher_keeps_the_frames_own_matchable_pdq_only(algos):
    """Kept whether or not the blocklist has PDQ entries; flat frames never."""
    blocklist = Blocklist()
    other = FrameHash(algos[0], bytes(32 if algos == ["pdq"] else 8))
    blocklist.put(
        np.array([0]), [Entry(other.algo, bytes.fromhex("f0" * len(other.digest)), "e", "l", "c")]
    )
    ring = RecentHashes(120.0, 100)
    matcher = FrameMatcher(blocklist, recent=ring)
    matcher(frame_of(textured(1), 1.0))
    matcher(frame_of(np.zeros((360, 640), np.uint8), 2.0))  # quality 0: never kept
    matcher(frame_of(np.full((360, 640), 128, np.uint8), 3.0))
    (frame,) = ring.last(120)
    assert (frame.pts_s, frame.quality >= 50, len(frame.digest)) == (1.0, True, 32)


def test_open_request_is_checked():
    request = open_request({"stream": "cam-1", "seconds": 30, "action": "review"}, source="mqtt")
    assert (request.stream, request.seconds, request.action, request.category) == (
        "cam-1",
        30.0,
        "review",
        "incident",
    )
    assert len(request.request) == 16
    for bad, said in [
        ([], "JSON object"),
        ({"stream": "../etc"}, "'stream'"),
        ({"stream": "a", "seconds": True}, "'seconds'"),
        ({"stream": "a", "seconds": float("nan")}, "'seconds'"),
        ({"stream": "a", "seconds": -1}, "'seconds'"),
        ({"stream": "a", "action": "ban"}, "'action'"),
        ({"stream": "a", "category": "a b"}, "'category'"),
        ({"stream": "a", "label": "x\ny"}, "'label'"),
    ]:
        with pytest.raises(ValueError, match=said):
            open_request(bad, source="cli")


INCIDENT = Incident("20261207-120000-abcd", "cam", "incident", "kill", "drill", 60.0, 1.0)


def test_entries_are_frames_of_the_incident_video_from_its_first_frame():
    frames = [IncidentFrame(bytes([n]) * 32, 80 + n, 100.0 + n * 0.5) for n in range(3)]
    entries = incident_entries(INCIDENT, frames)
    assert [(e.id, e.list, e.video, e.ts, e.quality) for e in entries] == [
        ("f00000", "incident-20261207-120000-abcd", "incident-20261207-120000-abcd", 0.0, 80),
        ("f00001", "incident-20261207-120000-abcd", "incident-20261207-120000-abcd", 0.5, 81),
        ("f00002", "incident-20261207-120000-abcd", "incident-20261207-120000-abcd", 1.0, 82),
    ]
    assert {(e.category, e.label, e.algo) for e in entries} == {("incident", "drill", "pdq")}
    assert entry_ids(INCIDENT) == [] and incident_entries(INCIDENT, []) == []


def test_vpdq_signal_is_threatexchanges_line():
    entries = incident_entries(
        INCIDENT, [IncidentFrame(b"\xab" * 32, 90, 0.0), IncidentFrame(b"\x01" * 32, 77, 12.3456)]
    )
    kind, _, body = vpdq_signal(entries).partition(" ")
    assert kind == "vpdq"
    assert json.loads(body) == [f"{'ab' * 32},90,0.0", f"{'01' * 32},77,12.3"]


def test_incidents_table_is_checked(tmp_path):
    path = tmp_path / "streamguard.toml"
    path.write_text("[incidents]\nwindow_s = 30\nmax_frames = 50\n")
    assert (load_file(path).incidents.window_s, load_file(path).incidents.max_frames) == (30.0, 50)
    path.write_text("[incidents]\nmax_frames = 0\n")
    with pytest.raises(ConfigError, match=r"incidents\.max_frames"):
        load_file(path)


def incident_match(at: float, distance: int) -> Match:
    frame = Frame("other", at, at, None, 640, 360)
    info = EntryInfo("pdq", "f00001", INCIDENT.list, "incident", "", False)
    return Match(frame, FrameHash("pdq", b"", 90), Hit(info, distance, 31), at)


@pytest.mark.parametrize(("action", "expected"), [("review", "review"), ("kill", "kill")])
def test_a_match_of_an_incident_list_is_decided_under_the_incidents_action(action, expected):
    overrides = {}
    stream = StreamPolicy(Policy(), overrides)
    overrides[INCIDENT.list] = action  # learnt after the policy was made: a live mapping
    decision = stream.observe([incident_match(0.0, 4)], 0.0)
    assert decision is not None and decision.action == Action(expected)
