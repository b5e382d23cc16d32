"""Decided events waiting for the broker, in a SQLite file that survives restarts.

An event is committed here (fsync) before anything tries to publish it, and removed
only once the broker has acknowledged it (PUBACK). Delivery is therefore at least
once: an event whose PUBACK was lost is sent again, with the same ``event_id``.

The outbox is bounded. When it is full a new event is refused, counted and logged
as an error: a full outbox means the broker has been unreachable for a long time,
and an operator must know, rather than the disk filling up.
"""

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from streamguard.errors import StreamguardError
from streamguard.observability import metrics

log = logging.getLogger("streamguard.outbox")
DEFAULT_MAX_EVENTS = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
)
"""


class OutboxError(StreamguardError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    topic: str
    payload: bytes
    created_at: float


class Outbox:
    """Used from one thread at a time (the MQTT sink's disk thread); ``len`` and
    ``oldest_age_s`` read plain attributes and may be called from any thread."""

    def __init__(self, path: Path, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.path = path
        self.max_events = max_events
        self.refused = 0  # events lost because the outbox was full
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a decided kill survives a power cut
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"{path}: cannot open the outbox ({exc})") from None
        self._depth = self._count()
        self._oldest_at = self._first_created_at()
        if self._depth:
            log.warning(
                "outbox %s: %d events from before the restart to deliver", path, self._depth
            )

    def _count(self) -> int:
        return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def _first_created_at(self) -> float | None:
        row = self._db.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else row[0]

    def __len__(self) -> int:
        return self._depth

    def put(
        self, event_id: str, topic: str, payload: bytes, created_at: float | None = None
    ) -> bool:
        """Commit an event; False if the outbox is full (the event is lost, loudly).

        An event id already waiting is not stored twice.
        """
        if self._depth >= self.max_events:
            self.refused += 1
            metrics.OUTBOX_REFUSED.inc()
            log.error(
                "outbox %s is full (%d events; the broker has been away too long): "
                "event %s for %s is lost (%d lost so far)",
                self.path,
                self._depth,
                event_id,
                topic,
                self.refused,
            )
            return False
        try:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, topic, payload, created_at) "
                "VALUES (?, ?, ?, ?)",
                (event_id, topic, payload, created_at or time.time()),
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot store event {event_id} ({exc})") from None
        self._depth += cursor.rowcount
        if self._oldest_at is None:
            self._oldest_at = self._first_created_at()
        return True

    def oldest(self, limit: int = 100) -> list[Pending]:
        """The events waiting longest, oldest first."""
        rows = self._db.execute(
            "SELECT seq, event_id, topic, payload, created_at FROM outbox ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [Pending(*row) for row in rows]

    def oldest_age_s(self, now: float | None = None) -> float:
        """How long the oldest waiting event has waited; 0 when empty."""
        oldest_at = self._oldest_at
        return 0.0 if oldest_at is None else max((now or time.time()) - oldest_at, 0.0)

    def delivered(self, seq: int) -> None:
        """Forget a delivered event. This commit skips the fsync: if a power cut undoes
        it, the event is sent once more, which at-least-once delivery allows."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        cursor = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        self._db.execute("PRAGMA synchronous=FULL")
        self._depth -= cursor.rowcount
        self._oldest_at = self._first_created_at() if self._depth else None

    def close(self) -> None:
        self._db.close()


def outbox_path(state_dir: Path, number: int) -> Path:
    """The outbox of worker process ``number``."""
    return state_dir / f"outbox-{number}.sqlite"


def adopt_orphans(state_dir: Path, processes: int, max_events: int = DEFAULT_MAX_EVENTS) -> int:
    """Move events waiting in outboxes of process numbers >= ``processes`` into outbox 0.

    After a restart with fewer worker processes, nobody would read those files again.
    Returns how many events moved.
    """
    moved = 0
    for path in sorted(state_dir.glob("outbox-*.sqlite")):
        number = path.stem.removeprefix("outbox-")
        if not number.isdigit() or int(number) < processes:
            continue
        orphan, heir = Outbox(path), Outbox(outbox_path(state_dir, 0), max_events)
        for pending in orphan.oldest(limit=orphan.max_events):
            heir.put(pending.event_id, pending.topic, pending.payload, pending.created_at)
            moved += 1
        orphan.close()
        heir.close()
        for leftover in state_dir.glob(f"{path.name}*"):  # with its -wal and -shm files
            leftover.unlink()
        log.info("outbox %s: its events now wait in outbox 0", path)
    return moved
