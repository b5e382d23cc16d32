"""``streamguard audit``: which decided events reached a subscriber, and where the others
stopped (docs/operations.md, "Proving nothing was lost after an incident").

Reads outbox files (or ``state_dir`` directories), subscriber logs and, with
``--broker``, the retained stream states; writes nothing anywhere. Exit 0 when every
event decided in the window is in a subscriber log, 1 when one is not, 2 when an input
cannot be read. Events carry no hash values and no secrets; stream URLs are not shown.
"""

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamguard.cli.console import EXIT_CLEAN, EXIT_MATCH
from streamguard.cli.options import Subcommands
from streamguard.config.mqtt import DEFAULT_PREFIX, MqttSettings
from streamguard.events.audit import (
    Missing,
    Received,
    Report,
    Stop,
    StreamMismatch,
    Window,
    compare,
)
from streamguard.events.audit_inputs import outbox_files, read_outbox, read_subscriber_log
from streamguard.events.retained import read_retained
from streamguard.events.schema import Action, rfc3339

DEFAULT_BROKER_WAIT_S = 10.0


def add_parser(commands: Subcommands) -> None:
    audit = commands.add_parser(
        "audit", help="prove which decided events reached a subscriber, and find the others"
    )
    audit.add_argument(
        "--outbox",
        action="append",
        type=Path,
        required=True,
        metavar="PATH",
        help="an outbox file, or a state_dir for all its outbox files (repeatable)",
    )
    audit.add_argument(
        "--subscriber-log",
        action="append",
        type=Path,
        required=True,
        metavar="PATH",
        help="events as a subscriber received them, one per line (repeatable)",
    )
    audit.add_argument(
        "--broker", metavar="URL", help="also compare with the retained stream states there"
    )
    audit.add_argument(
        "--broker-password-file", type=Path, metavar="FILE", help="the broker user's password"
    )
    audit.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="topic prefix (default: %(default)s)"
    )
    audit.add_argument(
        "--broker-wait-s",
        type=float,
        default=DEFAULT_BROKER_WAIT_S,
        metavar="S",
        help="longest time to read the retained states (default: %(default)g)",
    )
    audit.add_argument(
        "--since", type=moment, metavar="TIME", help="decided at or after (RFC 3339; UTC if bare)"
    )
    audit.add_argument("--until", type=moment, metavar="TIME", help="decided at or before")
    audit.add_argument(
        "--action",
        action="append",
        choices=[str(action) for action in Action],
        help="audit only these (repeatable; default: all), e.g. kill for a kill-only subscriber",
    )
    audit.add_argument("--json", action="store_true", help="the report as one JSON object")
    audit.set_defaults(handler=cmd_audit)


def moment(text: str) -> float:
    """An ISO 8601 / RFC 3339 time as a Unix time; without an offset, UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        example = "2026-12-07T05:00Z"
        raise argparse.ArgumentTypeError(f"'{text}': expected a time like {example}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def cmd_audit(args: argparse.Namespace) -> int:
    window = Window(frozenset(args.action or [str(a) for a in Action]), args.since, args.until)
    decided = [event for path in outbox_files(args.outbox) for event in read_outbox(path)]
    received = [event for path in args.subscriber_log for event in read_subscriber_log(path)]
    retained = None
    if args.broker:
        settings = MqttSettings(
            url=args.broker, prefix=args.prefix, password_file=args.broker_password_file
        )
        retained = read_retained(settings, args.broker_wait_s)
    report = compare(decided, received, window, retained)
    logs = Logs.of(received)
    if args.json:
        print(json.dumps(_as_json(report, window, logs, retained is not None)))
    else:
        for line in _as_text(report, window, logs, retained is not None):
            print(line)
    return EXIT_CLEAN if report.complete else EXIT_MATCH


@dataclass(frozen=True, slots=True)
class Logs:
    """What the subscriber logs cover: a decision before the first event they hold may
    have been received before they began, so the window should start there."""

    events: int
    first_at: float | None  # the earliest detected_at in them
    last_at: float | None

    @classmethod
    def of(cls, received: list[Received]) -> "Logs":
        times = [event.detected_at for event in received if event.detected_at is not None]
        return cls(len(received), min(times, default=None), max(times, default=None))


def _when(at: float | None) -> str | None:
    return None if at is None else rfc3339(at)


def _shown(at: float | None) -> str:
    return _when(at) or "-"


_LABELS = {  # the text report's name of each count
    "decided": "decided",
    "delivered": "delivered",
    "pending_in_outbox": "pending in outbox",
    "acked_not_received": "acked by broker, not received",
    "unknown_received": "received, never decided",
    "duplicates_received": "duplicates received",
    "streams_killed_no_kill_received": "streams killed, no kill received",
}


def _counts(report: Report, broker: bool) -> dict[str, int]:
    counts = {
        "decided": report.decided,
        "delivered": report.delivered,
        "pending_in_outbox": report.count(Stop.OUTBOX),
        "acked_not_received": report.count(Stop.BROKER),
        "unknown_received": len(report.unknown),
        "duplicates_received": report.duplicates,
    }
    if broker:
        killed = sum(1 for stream in report.streams if stream.missing)
        counts["streams_killed_no_kill_received"] = killed
    return counts


def _as_text(report: Report, window: Window, logs: Logs, broker: bool) -> list[str]:
    since, until = _when(window.since_s) or "any time", _when(window.until_s) or "any time"
    actions = ", ".join(sorted(window.actions))
    lines = [
        f"audited: {actions} events decided from {since} to {until}",
        f"subscriber logs: {logs.events} events, detected from {_shown(logs.first_at)} "
        f"to {_shown(logs.last_at)}",
    ]
    for key, count in _counts(report, broker).items():
        lines.append(f"{_LABELS[key] + ':':<34}{count:>7}")
    lines += [_missing_line(missing) for missing in report.missing]
    lines += [_unknown_line(event) for event in report.unknown]
    lines += [_stream_line(stream) for stream in report.streams]
    verdict = "nothing lost: every decided event in the window was received"
    if not report.complete:
        verdict = "NOT COMPLETE: decided events are missing from the subscriber logs"
    return [*lines, verdict]


def _missing_line(missing: Missing) -> str:
    decided = missing.decided
    where = "pending in outbox"
    if missing.stopped is Stop.BROKER:
        where = f"acked by broker at {_shown(decided.acked_at)}, not received"
    head = f"MISSING {decided.event_id} stream {decided.stream_id} {decided.action}"
    return f"{head} decided {_shown(decided.decided_at)}: {where} ({decided.outbox})"


def _unknown_line(event: Received) -> str:
    head = f"UNKNOWN {event.event_id} stream {event.stream_id} {event.action}"
    return f"{head} detected {_shown(event.detected_at)}: in no audited outbox ({event.where})"


def _stream_line(stream: StreamMismatch) -> str:
    state = f"stream {stream.stream_id}: retained state {stream.state} since {_shown(stream.since)}"
    if not stream.missing:
        return f"NOTE    {state}, though a kill was received"
    why = "its kill is listed above" if stream.kill_decided else "no kill in the audited outboxes"
    return f"STREAM  {state}, no kill received ({why})"


def _as_json(report: Report, window: Window, logs: Logs, broker: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "complete": report.complete,
        "window": {
            "since": _when(window.since_s),
            "until": _when(window.until_s),
            "actions": sorted(window.actions),
        },
        "subscriber_logs": {
            "events": logs.events,
            "first_detected_at": _when(logs.first_at),
            "last_detected_at": _when(logs.last_at),
        },
        "counts": _counts(report, broker),
        "missing": [
            {
                "event_id": m.decided.event_id,
                "stream_id": m.decided.stream_id,
                "action": m.decided.action,
                "decided_at": rfc3339(m.decided.decided_at),
                "stopped": str(m.stopped),
                "acked_at": _when(m.decided.acked_at),
                "outbox": m.decided.outbox,
            }
            for m in report.missing
        ],
        "unknown": [
            {
                "event_id": e.event_id,
                "stream_id": e.stream_id,
                "action": e.action,
                "detected_at": _when(e.detected_at),
                "received": e.where,
            }
            for e in report.unknown
        ],
    }
    if broker:
        body["streams"] = [
            {
                "stream_id": s.stream_id,
                "state": s.state,
                "since": _when(s.since),
                "kill_received": not s.missing,
                "kill_decided": s.kill_decided,
            }
            for s in report.streams
        ]
    return body
