"""Events are values; their JSON is what the shipped schema describes."""

import dataclasses

import jsonschema
import pytest

from streamguard.events.schema import (
    Action,
    Event,
    Evidence,
    FrameSeen,
    Reason,
    Unwatchable,
    VideoMatch,
    event_id,
    json_schema,
)

EVIDENCE = Evidence("pdq", 4, 31, 100, "e1", "samples", "test", "stand-in")


def test_a_match_event_has_the_schema_s_shape_and_its_deterministic_id():
    frame = FrameSeen(4.0004, 100.0, 1280, 720)
    event = Event(
        Action.KILL,
        "cam",
        "rtmp://h/live/***",
        "w/1",
        frame,
        100.25,
        match=EVIDENCE,
        broadcast_ms=96_000,
    )
    body = event.to_json()
    jsonschema.validate(body, json_schema())
    assert event.reason is Reason.MATCH and body["reason"] == "match"
    assert body["action"] == "kill" and body["latency_ms"] == 250
    assert body["frame"] == {
        "pts_s": 4.0,
        "received_at": "1970-01-01T00:01:40.000Z",
        "width": 1280,
        "height": 720,
    }
    assert body["match"]["entry_id"] == "e1" and body["match"]["quality"] == 100
    assert body["event_id"] == event_id("cam", "samples", "e1", 4.0004, 96_000)
    # The same frame time in another broadcast is another decision.
    restarted = dataclasses.replace(event, broadcast_ms=96_001)
    assert restarted.event_id != event.event_id


def test_an_unwatchable_event_names_its_cause_and_has_no_match():
    event = Event(
        Action.REVIEW,
        "cam",
        "rtmp://h/live/***",
        "w/1",
        FrameSeen(12.5, 200.0),
        200.0,
        unwatchable=Unwatchable("too_large", "a frame is 8208x16"),
    )
    body = event.to_json()
    jsonschema.validate(body, json_schema())
    assert body["reason"] == "unwatchable" and "match" not in body
    assert body["unwatchable"] == {"cause": "too_large", "detail": "a frame is 8208x16"}
    assert body["frame"] == {"pts_s": 12.5, "received_at": "1970-01-01T00:03:20.000Z"}
    assert body["latency_ms"] == 0
    assert body["event_id"] == event_id("cam", "streamguard", "unwatchable:too_large", 12.5, 0)


def test_a_known_video_event_carries_its_video_evidence():
    video = VideoMatch("v-9f2c", 431.2004, 5, 8.0, 0.8333)
    frame = FrameSeen(8.0, 100.0, 854, 480)
    event = Event(
        Action.KILL, "cam", "rtmp://h/live/***", "w/1", frame, 100.1, match=EVIDENCE, video=video
    )
    body = event.to_json()
    jsonschema.validate(body, json_schema())
    assert body["video"] == {
        "id": "v-9f2c",
        "offset_s": 431.2,
        "frames_matched": 5,
        "window_s": 8.0,
        "coverage": 0.833,
    }
    bad = body | {"video": {**body["video"], "coverage": 1.5}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())
