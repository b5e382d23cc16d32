"""The files ``streamguard audit`` reads: outbox files and subscriber logs (events/audit.py).

Outbox files are read without writing anything: a file a process still has open (its
``-wal`` file exists) is opened read-only, which sees that process's commits; a closed
one is opened as immutable, since a read-only open of a WAL file would leave empty
``-wal`` and ``-shm`` files beside the evidence. Files of versions before the ledger
have no table ``sent``: their acknowledged events are gone, and only those still waiting
are known.

A subscriber log is what a platform's subscriber wrote, one received event per line:
the payload alone (``mosquitto_sub -t 'PREFIX/v1/kill/+' -q 1``, or JSON lines a
consumer writes) or topic and payload (``mosquitto_sub -v``). Blank lines and stream
status messages (``PREFIX/v1/status/…``, or a JSON object with ``state`` and no
``event_id``) are passed over; any other line that is not an event is an error naming
its file and line. A last line without its newline and not readable was cut short by a
subscriber that died while writing: it is left out, so its event, if decided, shows as
not received.
"""

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from streamguard.events.audit import AuditInputError, Decided, Received

OUTBOX_GLOB = "outbox-*.sqlite"  # events/outbox.py outbox_path()


def outbox_files(paths: list[Path]) -> list[Path]:
    """The files to read: a directory (a ``state_dir``) stands for its outbox files."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob(OUTBOX_GLOB))
            if not found:
                raise AuditInputError(f"{path}: no outbox files ({OUTBOX_GLOB}) in this directory")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise AuditInputError(f"{path}: no such file or directory")
    return files


def read_outbox(path: Path) -> list[Decided]:
    """Events waiting in the outbox file and, if it has the ledger, those the broker took."""
    live = path.with_name(path.name + "-wal").exists()
    uri = f"{path.absolute().as_uri()}?{'mode=ro' if live else 'immutable=1'}"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "outbox" not in tables:
                raise AuditInputError(f"{path}: not a streamguard outbox (no table outbox)")
            rows = db.execute("SELECT event_id, topic, created_at, NULL FROM outbox").fetchall()
            if "sent" in tables:
                ledger = "SELECT event_id, topic, created_at, acked_at FROM sent"
                rows += db.execute(ledger).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise AuditInputError(f"{path}: not a readable streamguard outbox ({exc})") from None
    return [_decided(path, *row) for row in rows]


def _decided(
    path: Path, event_id: str, topic: str, created_at: float, acked_at: float | None
) -> Decided:
    """Stream and action from the topic, ``PREFIX/v1/ACTION/STREAM_ID``."""
    parts = topic.rsplit("/", 3)
    if len(parts) != 4 or parts[1] != "v1":
        raise AuditInputError(f"{path}: event {event_id}: topic is not PREFIX/v1/ACTION/STREAM")
    return Decided(event_id, parts[3], parts[2], created_at, acked_at, str(path))


def read_subscriber_log(path: Path) -> list[Received]:
    """The events of a subscriber's log, in the order received."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditInputError(f"{path}: cannot read the subscriber log ({exc.strerror})") from None
    lines = data.split(b"\n")
    received = []
    for number, raw in enumerate(lines, start=1):
        try:
            event = _event(raw.decode().strip(), f"{path}:{number}")
        except (UnicodeDecodeError, ValueError) as exc:
            if number == len(lines) and raw:  # the last line, without its newline
                continue
            raise AuditInputError(f"{path}: line {number}: {exc}") from None
        if event is not None:
            received.append(event)
    return received


def _event(line: str, where: str) -> Received | None:
    """The event on a line; None for a blank line or a stream status. ValueError names
    what is wrong."""
    if not line:
        return None
    if not line.startswith("{"):  # mosquitto_sub -v: TOPIC PAYLOAD
        topic, _, line = line.partition(" ")
        if "/v1/status/" in topic:
            return None
        if not line.startswith("{"):
            raise ValueError("expected an event as JSON, or a topic and an event")
    try:
        body = json.loads(line)  # an object: the line starts with "{"
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if "event_id" not in body and "state" in body:
        return None  # a stream status
    return Received(
        _text(body, "event_id"),
        _text(body, "stream_id"),
        _text(body, "action"),
        _moment(body.get("detected_at")),
        where,
    )


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a streamguard event (no {key})")
    return value


def _moment(value: object) -> float | None:
    """An RFC 3339 time as a Unix time; None if absent or not a time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
