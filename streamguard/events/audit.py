"""Which decided events reached a subscriber, and where the others stopped (``streamguard
audit``; docs/operations.md, "Proving nothing was lost after an incident").

Pure: the inputs are read by events/audit_inputs.py (outbox files, subscriber logs) and
events/retained.py (the broker's retained stream states). An event is *decided* once it
is in an outbox file, either still waiting (table ``outbox``) or acknowledged by the
broker (the ledger, table ``sent``); it is *delivered* once the subscriber's log has it,
whatever the outbox says (a lost PUBACK leaves a delivered event waiting). A decided event
the log lacks stopped either in the outbox (the broker never acknowledged it) or after
the broker (acknowledged, never received: the broker or the subscriber lost it).
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from streamguard.errors import StreamguardError

KILLED = "killed"  # the retained state of a stream a kill was decided on (runtime/state.py)


class AuditInputError(StreamguardError):
    """An input of the audit cannot be read: missing, not an outbox, a malformed line,
    a broker that does not answer."""


@dataclass(frozen=True, slots=True)
class Decided:
    """An event found in an outbox file."""

    event_id: str
    stream_id: str
    action: str
    decided_at: float  # committed to the outbox, milliseconds after the decision
    acked_at: float | None  # the broker's PUBACK (table ``sent``); None: still waiting
    outbox: str  # the file it was found in, as given


@dataclass(frozen=True, slots=True)
class Received:
    """An event line of a subscriber's log."""

    event_id: str
    stream_id: str
    action: str
    detected_at: float | None  # the event's own decision time, if it has a readable one
    where: str  # FILE:LINE


@dataclass(frozen=True, slots=True)
class Retained:
    """A stream's retained status message at the broker."""

    stream_id: str
    state: str
    since: float | None  # when the stream entered ``state``


@dataclass(frozen=True, slots=True)
class Window:
    """The decisions audited: decided within [since_s, until_s] (None: open), of ``actions``."""

    actions: frozenset[str]
    since_s: float | None = None
    until_s: float | None = None

    def covers(self, action: str, at: float | None) -> bool:
        """Unknown times are inside: an audit would rather show too much than hide."""
        if action not in self.actions:
            return False
        if at is None:
            return True
        return (self.since_s is None or at >= self.since_s) and (
            self.until_s is None or at <= self.until_s
        )


class Stop(StrEnum):
    """Where an undelivered event stopped."""

    OUTBOX = "pending_in_outbox"  # never acknowledged by the broker
    BROKER = "acked_not_received"  # acknowledged by the broker, not in the subscriber's log


@dataclass(frozen=True, slots=True)
class Missing:
    decided: Decided
    stopped: Stop


@dataclass(frozen=True, slots=True)
class StreamMismatch:
    """A stream whose retained state and received kills disagree.

    ``missing``: the state says killed and no kill for the stream was received, a decided
    kill missing from the log (counted as lost). Otherwise a kill was received and the state
    is another (``keep_watching_after_kill``, or the stream was watched again later):
    worth a look, but nothing lost.
    """

    stream_id: str
    state: str
    since: float | None
    missing: bool
    kill_decided: bool  # a kill for the stream is in the audited outboxes


@dataclass(frozen=True, slots=True)
class Report:
    decided: int  # distinct event ids decided in the window
    delivered: int  # of those, in the subscriber's log
    missing: tuple[Missing, ...]  # of those, not in the log, oldest first
    unknown: tuple[Received, ...]  # received in the window, in no audited outbox
    duplicates: int  # copies received beyond the first, of events in the window
    streams: tuple[StreamMismatch, ...]  # empty unless the broker was read

    def count(self, stopped: Stop) -> int:
        return sum(1 for missing in self.missing if missing.stopped is stopped)

    @property
    def complete(self) -> bool:
        """Every decision in the window reached the subscriber."""
        return not self.missing and not any(stream.missing for stream in self.streams)


def merge(decisions: Iterable[Decided]) -> dict[str, Decided]:
    """One decision per event id: the same id can wait in several outbox files (two
    workers deciding on the same frame, a restart with fewer processes); acknowledged
    anywhere means the broker has it."""
    merged: dict[str, Decided] = {}
    for decided in decisions:
        known = merged.get(decided.event_id)
        if known is None or (known.acked_at is None and decided.acked_at is not None):
            merged[decided.event_id] = decided
    return merged


def compare(
    decisions: Iterable[Decided],
    received: Sequence[Received],
    window: Window,
    retained: Iterable[Retained] | None = None,
) -> Report:
    """The audit of the decisions in ``window`` against what the subscriber received;
    ``retained``: the broker's stream states, None if the broker was not read."""
    merged = merge(decisions)
    audited = {
        event_id: decided
        for event_id, decided in merged.items()
        if window.covers(decided.action, decided.decided_at)
    }
    copies = Counter(event.event_id for event in received)
    got: dict[str, Received] = {}  # the first copy of each, in the order received
    for event in received:
        got.setdefault(event.event_id, event)
    missing = tuple(
        Missing(decided, Stop.OUTBOX if decided.acked_at is None else Stop.BROKER)
        for decided in sorted(audited.values(), key=lambda d: (d.decided_at, d.event_id))
        if decided.event_id not in got
    )
    unknown = tuple(
        event
        for event in got.values()
        if event.event_id not in merged and window.covers(event.action, event.detected_at)
    )
    in_window = set(audited) | {event.event_id for event in unknown}
    return Report(
        decided=len(audited),
        delivered=len(audited) - len(missing),
        missing=missing,
        unknown=unknown,
        duplicates=sum(copies[event_id] - 1 for event_id in in_window if event_id in copies),
        streams=() if retained is None else _streams(merged, got, window, retained),
    )


def _streams(
    merged: dict[str, Decided],
    got: dict[str, Received],
    window: Window,
    retained: Iterable[Retained],
) -> tuple[StreamMismatch, ...]:
    """Streams whose retained state is ``killed`` (entered in the window) with no kill
    received, and streams with a kill received in the window whose state is another."""
    if "kill" not in window.actions:
        return ()
    killed_received = {e.stream_id for e in got.values() if e.action == "kill"}
    killed_in_window = {
        e.stream_id
        for e in got.values()
        if e.action == "kill" and window.covers("kill", _decided_at(merged, e))
    }
    kill_decided = {d.stream_id for d in merged.values() if d.action == "kill"}
    found = []
    for status in sorted(retained, key=lambda s: s.stream_id):
        if status.state == KILLED:
            if status.stream_id in killed_received or not window.covers("kill", status.since):
                continue
            missing = True
        elif status.stream_id in killed_in_window:
            missing = False
        else:
            continue
        decided = status.stream_id in kill_decided
        found.append(StreamMismatch(status.stream_id, status.state, status.since, missing, decided))
    return tuple(found)


def _decided_at(merged: dict[str, Decided], event: Received) -> float | None:
    """A received event's decision time: its outbox's, else its own."""
    decided = merged.get(event.event_id)
    return event.detected_at if decided is None else decided.decided_at
