"""`streamguard audit` on real outbox files (written by `Outbox`), real subscriber logs and,
end to end, a real mosquitto: its retained stream states and `mosquitto_sub`'s output."""

import asyncio
import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamguard.cli.main import main
from streamguard.config.mqtt import MqttSettings
from streamguard.events.mqtt import MqttSink
from streamguard.events.outbox import Outbox, outbox_path
from streamguard.events.schema import Action, Event, FrameSeen
from streamguard.runtime.state import StreamState, Watch

from ..support.cli import streamguard
from ..support.mosquitto import mosquitto_broker
from ..support.processes import stop
from ..support.subscriber import mosquitto_pub

pytestmark = pytest.mark.integration
URL = "rtmp://media.internal/live/stream-key-123"


def event(stream_id: str, pts_s: float, action: Action = Action.KILL) -> Event:
    now = time.time()
    frame = FrameSeen(pts_s, now - 0.05)
    return Event(action, stream_id, "rtmp://media.internal/live/***", "w/1", frame, now)


def payload(decision: Event) -> bytes:
    return json.dumps(decision.to_json(), separators=(",", ":")).encode()


def commit(outbox: Outbox, decision: Event) -> None:
    topic = f"streamguard/v1/{decision.action}/{decision.stream_id}"
    assert outbox.put(decision.event_id, topic, payload(decision))


def acknowledge(outbox: Outbox) -> None:
    """The broker's PUBACK for every waiting event: each moves to the ledger (``sent``)."""
    for pending in outbox.oldest():
        outbox.delivered(pending.seq)


def without_ledger(path: Path) -> None:
    """Make a closed outbox file look as versions before the ledger left it."""
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE sent")
    db.close()


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def audit(capsys):
    """``streamguard audit ARGS…`` in this process (a subprocess costs 2 s on a loaded
    machine), with its exit code and output."""

    def run(*args: str) -> Outcome:
        code = main(["audit", *args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def test_two_worker_outboxes_against_a_subscriber_log(tmp_path, audit):
    state = tmp_path / "state"
    ours = [event("cam-1", 4.0), event("cam-1", 14.0), event("cam-2", 4.0, Action.REVIEW)]
    lost, waiting = event("cam-3", 4.0), event("cam-4", 4.0)
    first = Outbox(outbox_path(state, 0))  # this version's, open: a running process's
    for decision in [*ours[:2], lost]:
        commit(first, decision)
    acknowledge(first)
    second = Outbox(outbox_path(state, 1))
    commit(second, ours[2])  # still waiting, yet received (its PUBACK was lost)
    commit(second, waiting)
    second.close()
    without_ledger(second.path)
    log = tmp_path / "platform.log"
    lines = [payload(e).decode() for e in [*ours, ours[0]]]
    log.write_text("\n".join(lines) + "\n")
    before = sorted(p.name for p in state.iterdir())

    result = audit("--outbox", str(state), "--subscriber-log", str(log))

    assert result.returncode == 1, result.stderr
    out = result.stdout
    for label, count in [("decided", 5), ("delivered", 3), ("pending in outbox", 1)]:
        assert f"\n{label + ':':<34}{count:>7}\n" in out
    assert f"\n{'acked by broker, not received:':<34}{1:>7}\n" in out
    assert f"\n{'duplicates received:':<34}{1:>7}\n" in out
    missing = [line for line in out.splitlines() if line.startswith("MISSING")]
    assert len(missing) == 2
    assert f"MISSING {lost.event_id} stream cam-3 kill decided " in missing[0]
    assert ": acked by broker at " in missing[0] and "outbox-0.sqlite" in missing[0]
    assert f"MISSING {waiting.event_id} stream cam-4 kill" in missing[1]
    assert ": pending in outbox (" in missing[1] and "outbox-1.sqlite" in missing[1]
    assert "stream-key-123" not in out and "NOT COMPLETE" in out
    assert sorted(p.name for p in state.iterdir()) == before  # the audit wrote nothing there

    # Everything received: complete. A kill-only subscriber audits kills only.
    first.close()
    log.write_text("\n".join(payload(e).decode() for e in [*ours, lost, waiting]) + "\n")
    result = audit("--outbox", str(state), "--subscriber-log", str(log), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["complete"] and report["counts"]["delivered"] == 5
    logged = report["subscriber_logs"]
    assert logged["events"] == 5 and logged["first_detected_at"] <= logged["last_detected_at"]
    kills = tmp_path / "kills.log"
    kills.write_text("\n".join(payload(e).decode() for e in [*ours[:2], lost, waiting]) + "\n")
    only_kills = ["--outbox", str(state), "--subscriber-log", str(kills), "--json"]
    assert audit(*only_kills).returncode == 1  # the review is not in a kill-only log
    result = audit(*only_kills, "--action", "kill")
    assert result.returncode == 0 and json.loads(result.stdout)["counts"]["decided"] == 4


def test_the_window_selects_decisions_by_time(tmp_path, audit):
    outbox = Outbox(outbox_path(tmp_path, 0))
    commit(outbox, early := event("cam-1", 4.0))
    time.sleep(0.05)
    middle = time.time()
    commit(outbox, late := event("cam-1", 14.0))
    outbox.close()
    log = tmp_path / "platform.log"
    log.write_text(payload(late).decode() + "\n")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f"{middle % 1:.3f}"[1:]
    result = audit("--outbox", str(tmp_path), "--subscriber-log", str(log), "--since", since)
    assert result.returncode == 0, result.stdout
    assert early.event_id not in result.stdout
    result = audit("--outbox", str(tmp_path), "--subscriber-log", str(log), "--until", since)
    assert result.returncode == 1 and f"MISSING {early.event_id}" in result.stdout


def test_bad_inputs_are_one_line_errors_naming_them(tmp_path, audit):
    outbox = Outbox(outbox_path(tmp_path / "state", 0))
    outbox.close()
    log = tmp_path / "platform.log"
    log.write_text(payload(event("cam-1", 4.0)).decode() + "\nnot an event\n")
    good_log = tmp_path / "good.log"
    good_log.write_text("")
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.sqlite").write_text("hello")
    state = str(tmp_path / "state")
    cases = [
        (["--outbox", state, "--subscriber-log", str(log)], f"{log}: line 2: expected an event"),
        (["--outbox", str(tmp_path / "nope"), "--subscriber-log", str(good_log)], "nope: no such"),
        (["--outbox", str(foreign), "--subscriber-log", str(good_log)], "(no table outbox)"),
        (["--outbox", str(tmp_path / "empty"), "--subscriber-log", str(good_log)], "no outbox"),
        (["--outbox", str(tmp_path / "text.sqlite"), "--subscriber-log", str(good_log)], "text"),
        (["--outbox", state, "--subscriber-log", str(tmp_path / "gone.log")], "gone.log: cannot"),
    ]
    for args, problem in cases:
        result = audit(*args)
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("streamguard: error: ")
        assert problem in result.stderr
    late = ["--outbox", state, "--subscriber-log", str(good_log), "--since", "yesterday"]
    result = streamguard("audit", *late)  # as an operator runs it; argparse exits
    assert result.returncode == 2 and "'yesterday': expected a time like" in result.stderr


def test_end_to_end_with_the_broker_retained_states(tmp_path, mosquitto, audit):
    """Events published by the real MQTT sink, received by `mosquitto_sub` as a platform
    runs it; the audit also reads the stream states the sink retained at the broker."""
    killed = StreamState("cam-old", URL, state=Watch.KILLED)  # its kill never reached the outbox
    mosquitto_pub(
        mosquitto.port, "streamguard/v1/status/cam-old", json.dumps(killed.snapshot()), True
    )
    log = tmp_path / "platform.log"
    with log.open("wb") as out:
        command = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1"]
        command += ["-t", "streamguard/v1/kill/+", "-t", "streamguard/v1/status/+"]
        subscriber = subprocess.Popen(command, stdout=out)  # statuses and events, as received
    try:
        deadline = time.monotonic() + 10
        while b"cam-old" not in log.read_bytes():  # the retained state: subscribed
            assert time.monotonic() < deadline, "mosquitto_sub did not subscribe"
            time.sleep(0.05)
        path = outbox_path(tmp_path / "state", 0)
        asyncio.run(publish(mosquitto.url(), path, [event("cam-1", 4.0), event("cam-1", 14.0)]))
        deadline = time.monotonic() + 10
        while log.read_bytes().count(b'"event_id"') < 2:
            assert time.monotonic() < deadline, "the events did not arrive"
            time.sleep(0.05)
    finally:
        stop(subscriber)
    lost, waiting = event("cam-2", 4.0), event("cam-3", 4.0)
    outbox = Outbox(path)
    commit(outbox, lost)
    acknowledge(outbox)  # the broker took it; the subscriber never got it
    commit(outbox, waiting)
    outbox.close()

    args = ["--outbox", str(path), "--subscriber-log", str(log), "--broker", mosquitto.url()]
    result = audit(*args, "--broker-wait-s", "5")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert f"{'streams killed, no kill received:':<34}{1:>7}" in lines
    assert any(line.startswith(f"MISSING {lost.event_id} stream cam-2 kill") for line in lines)
    assert any(line.startswith(f"MISSING {waiting.event_id} stream cam-3 kill") for line in lines)
    stream_line = next(line for line in lines if line.startswith("STREAM"))
    assert "stream cam-old: retained state killed since " in stream_line
    assert stream_line.endswith("no kill received (no kill in the audited outboxes)")
    note = next(line for line in lines if line.startswith("NOTE"))
    assert "stream cam-1: retained state watching since " in note
    assert note.endswith(", though a kill was received") and "stream-key" not in result.stdout

    result = audit(*args, "--json")
    report = json.loads(result.stdout)
    assert (
        report["counts"]
        | {"decided": 4, "delivered": 2, "acked_not_received": 1, "pending_in_outbox": 1}
        == report["counts"]
    )
    assert [(s["stream_id"], s["kill_received"]) for s in report["streams"]] == [
        ("cam-1", True),
        ("cam-old", False),
    ]


async def publish(url: str, path: Path, decisions: list[Event]) -> None:
    """Deliver ``decisions`` through the real sink (its ledger records each PUBACK), which
    also retains cam-1's state as watching."""
    outbox = Outbox(path)
    sink = MqttSink(MqttSettings(url=url), outbox, "audit-test")
    for decision in decisions:
        await sink.publish(decision)
    # keep_watching_after_kill: watched on after its kills
    sink.stream_status("cam-1", StreamState("cam-1", URL, state=Watch.WATCHING).snapshot())
    task = asyncio.create_task(sink.run())
    deadline = time.monotonic() + 10
    while len(outbox) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    sink.stop()
    await asyncio.wait_for(task, 5)


def test_a_broker_user_with_a_password_file_and_a_broker_refusing(tmp_path, audit):
    Outbox(outbox_path(tmp_path, 0)).close()
    (log := tmp_path / "platform.log").write_text("")
    secret = tmp_path / "consumer.password"
    secret.write_text("sub-secret\n")
    users = {"consumer": "sub-secret", "streamguard": "pub-secret"}
    with mosquitto_broker(tmp_path / "broker", users=users) as broker:
        status = json.dumps(StreamState("cam-7", URL, state=Watch.KILLED).snapshot())
        command = ["mosquitto_pub", "-p", str(broker.port), "-u", "streamguard", "-P", "pub-secret"]
        command += ["-q", "1", "-r", "-t", "streamguard/v1/status/cam-7", "-m", status]
        subprocess.run(command, check=True, timeout=10)
        args = ["--outbox", str(tmp_path), "--subscriber-log", str(log)]
        url = f"mqtt://consumer@127.0.0.1:{broker.port}"
        result = audit(*args, "--broker", url, "--broker-password-file", str(secret), "--json")
        assert result.returncode == 1, result.stderr
        assert [s["stream_id"] for s in json.loads(result.stdout)["streams"]] == ["cam-7"]
        wrong = f"mqtt://consumer:wrong-secret@127.0.0.1:{broker.port}"
        result = audit(*args, "--broker", wrong)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"streamguard: error: mqtt://consumer:***@127.0.0.1:{broker.port}"
    )
    assert "cannot read stream states" in result.stderr and "wrong-secret" not in result.stderr
