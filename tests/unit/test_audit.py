"""The audit's comparison (events/audit.py) and its reading of subscriber logs."""

import json
import re

import pytest

from streamguard.events.audit import (
    AuditInputError,
    Decided,
    Received,
    Retained,
    Stop,
    Window,
    compare,
)
from streamguard.events.audit_inputs import read_subscriber_log

ALL = Window(frozenset({"kill", "review"}))


def decided(event_id: str, at: float, acked: bool = True, stream: str = "cam", action="kill"):
    return Decided(event_id, stream, action, at, at + 0.01 if acked else None, "outbox-0.sqlite")


def got(event_id: str, at: float | None = None, stream: str = "cam", action: str = "kill"):
    return Received(event_id, stream, action, at, "log:1")


def test_each_decision_is_delivered_or_stopped_somewhere_named():
    report = compare(
        [decided("a", 1), decided("b", 2), decided("c", 3, acked=False), decided("d", 4, False)],
        [got("a"), got("d")],  # d: received though its PUBACK never came back
        ALL,
    )
    assert (report.decided, report.delivered) == (4, 2)
    assert [(m.decided.event_id, m.stopped) for m in report.missing] == [
        ("b", Stop.BROKER),
        ("c", Stop.OUTBOX),
    ]
    assert report.count(Stop.OUTBOX) == report.count(Stop.BROKER) == 1
    assert not report.complete


def test_everything_received_is_complete_and_copies_are_counted():
    report = compare([decided("a", 1), decided("b", 2)], [got("a"), got("b"), got("a")], ALL)
    assert report.complete and report.delivered == 2 and not report.missing
    assert report.duplicates == 1 and report.unknown == ()


def test_an_event_in_several_outboxes_is_one_decision_acknowledged_if_any_copy_is():
    waiting = decided("a", 1, acked=False)
    taken = decided("a", 1, acked=True)
    for order in ([waiting, taken], [taken, waiting]):
        report = compare(order, [], ALL)
        assert report.decided == 1
        assert [m.stopped for m in report.missing] == [Stop.BROKER]


def test_the_window_bounds_decisions_and_foreign_events_by_time_and_action():
    window = Window(frozenset({"kill"}), since_s=10, until_s=20)
    report = compare(
        [
            decided("early", 5),
            decided("in", 15),
            decided("late", 25),
            decided("review", 15, action="review"),
        ],
        [
            got("early"),  # decided before the window: neither audited nor unknown
            got("early"),
            got("x-in", 12),
            got("x-out", 30),
            got("x-undated"),  # no readable time: shown rather than hidden
            got("x-review", 12, action="review"),
        ],
        window,
    )
    assert report.decided == 1 and [m.decided.event_id for m in report.missing] == ["in"]
    assert [e.event_id for e in report.unknown] == ["x-in", "x-undated"]
    assert report.duplicates == 0  # the copy of "early" is outside the window


def test_a_stream_retained_as_killed_needs_a_kill_received():
    report = compare(
        [decided("k1", 15, stream="cam-1"), decided("k2", 15, acked=False, stream="cam-2")],
        [got("k1", stream="cam-1")],
        Window(frozenset({"kill", "review"}), since_s=10),
        [
            Retained("cam-1", "killed", 15),  # its kill was received: fine
            Retained("cam-2", "killed", 15),  # its kill waits in the outbox
            Retained("cam-3", "killed", 16),  # no kill decided in the audited outboxes
            Retained("cam-4", "killed", 5),  # killed before the window
            Retained("cam-5", "watching", 16),
        ],
    )
    assert [(s.stream_id, s.missing, s.kill_decided) for s in report.streams] == [
        ("cam-2", True, True),
        ("cam-3", True, False),
    ]
    assert not report.complete


def test_a_kill_received_for_a_stream_watched_again_is_noted_not_lost():
    report = compare(
        [decided("k1", 15, stream="cam-1")],
        [got("k1", stream="cam-1")],
        ALL,
        [Retained("cam-1", "watching", 40)],  # keep_watching_after_kill, or watched again
    )
    assert [(s.stream_id, s.state, s.missing) for s in report.streams] == [
        ("cam-1", "watching", False)
    ]
    assert report.complete


def test_killed_states_are_not_checked_when_kills_are_not_audited():
    window = Window(frozenset({"review"}))
    report = compare([], [], window, [Retained("cam-3", "killed", 16)])
    assert report.streams == () and report.complete


EVENT = {
    "schema": "streamguard.event.v1",
    "event_id": "0b8f0f7e-6a53-5f0e-9d57-2c6f1a7c8e11",
    "action": "kill",
    "stream_id": "cam-1",
    "stream_url": "rtmp://media.internal:1935/live/***",
    "detected_at": "2026-11-25T20:09:10.412Z",
}


def test_a_log_of_payloads_or_topics_and_payloads_with_statuses_passed_over(tmp_path):
    review = EVENT | {"event_id": "e-2", "action": "review", "stream_id": "cam-2"}
    status = {"stream_id": "cam-1", "state": "killed", "since": 1.0}
    log = tmp_path / "sub.log"
    log.write_text(
        f"{json.dumps(EVENT)}\n"
        "\n"
        f"{json.dumps(status)}\n"  # mosquitto_sub -t 'streamguard/v1/#' prints statuses too
        f"streamguard/v1/review/cam-2 {json.dumps(review)}\n"  # mosquitto_sub -v
        f"streamguard/v1/status/cam-1 {json.dumps(status)}\n"
        "streamguard/v1/status/cam-9 (null)\n"  # a cleared status, as -v prints it
    )
    events = read_subscriber_log(log)
    assert [(e.event_id, e.stream_id, e.action) for e in events] == [
        (EVENT["event_id"], "cam-1", "kill"),
        ("e-2", "cam-2", "review"),
    ]
    assert events[0].detected_at == pytest.approx(1795637350.412)
    assert events[1].where == f"{log}:4"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "expected an event as JSON"),
        ('{"event_id": "a", "action": "kill"', "not JSON"),
        ("[1, 2]", "expected an event as JSON"),
        ("streamguard/v1/kill/cam-1 kill", "expected an event as JSON, or a topic and an event"),
        ('{"event_id": "a", "action": "kill"}', "not a streamguard event (no stream_id)"),
        ("{}", "not a streamguard event (no event_id)"),
    ],
)
def test_a_malformed_line_is_named_by_file_and_line(tmp_path, line, problem):
    log = tmp_path / "sub.log"
    log.write_text(f"{json.dumps(EVENT)}\n{line}\n{json.dumps(EVENT)}\n")
    with pytest.raises(AuditInputError, match="^" + re.escape(f"{log}: line 2: {problem}")):
        read_subscriber_log(log)


def test_a_last_line_cut_short_is_left_out_one_in_the_middle_is_an_error(tmp_path):
    cut = json.dumps(EVENT)[:40]
    log = tmp_path / "sub.log"
    log.write_text(f"{json.dumps(EVENT)}\n{cut}")  # the subscriber died while writing
    assert len(read_subscriber_log(log)) == 1
    log.write_text(f"{json.dumps(EVENT)}\n{cut}\n")  # a whole line: malformed
    with pytest.raises(AuditInputError, match="line 2: not JSON"):
        read_subscriber_log(log)
    log.write_bytes(b'{"event_id": "\xff"}\n')
    with pytest.raises(AuditInputError, match="line 1: 'utf-8' codec"):
        read_subscriber_log(log)


def test_an_unreadable_log_is_named(tmp_path):
    with pytest.raises(AuditInputError, match=r"missing\.log: cannot read the subscriber log"):
        read_subscriber_log(tmp_path / "missing.log")
