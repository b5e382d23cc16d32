"""Decided events waiting for the broker, in a SQLite file that survives restarts.

An event is committed here (fsync) before anything tries to publish it, and removed
only once the broker has acknowledged it (PUBACK). Delivery is therefore at least
once: an event whose PUBACK was lost is sent again, with the same ``event_id``.

The outbox is bounded. When it is full a new event is refused, counted and logged
as an error: a full outbox means the broker has been unreachable for a long time,
and an operator must know, rather than the disk filling up.

A file that cannot be written (disk full, I/O error) does not lose events either:
each write error is counted and logged, and the event waits in memory, behind those
in the file, until the file takes it (tried again at the next event and whenever the
sender reads the outbox). Meanwhile it is sent from memory, and would not survive a
restart.
"""

import logging
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path

from streamguard.config.model import DEFAULT_MAX_EVENTS
from streamguard.errors import StreamguardError
from streamguard.observability import metrics

log = logging.getLogger("streamguard.outbox")
_DELETE_BATCH = 500  # rows per DELETE, below SQLite's limit on bound parameters

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
        self.write_errors = 0  # writes the file refused (disk full, I/O error)
        self._memory: list[Pending] = []  # events the file could not take yet, oldest first
        self._memory_seq = 0  # their seq: negative, so never that of a row
        self._undeleted: set[int] = set()  # rows delivered, whose delete failed: skipped
        self._failing = ""  # the last write error, until a write works again
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a decided kill survives a power cut
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"{path}: cannot open the outbox ({exc})") from None
        self._depth = self._count()  # rows waiting in the file
        self._oldest_at: float | None = None
        self._refresh_oldest()
        if self._depth:
            log.warning(
                "outbox %s: %d events from before the restart to deliver", path, self._depth
            )

    def _count(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return count

    def _rows(self, limit: int) -> list[Pending]:
        """The oldest rows still to deliver."""
        rows = self._db.execute(
            "SELECT seq, event_id, topic, payload, created_at FROM outbox ORDER BY seq LIMIT ?",
            (limit + len(self._undeleted),),
        )
        return [Pending(*row) for row in rows if row[0] not in self._undeleted][:limit]

    def _refresh_oldest(self) -> None:
        waiting = (self._rows(1) if self._depth else []) or self._memory[:1]
        self._oldest_at = waiting[0].created_at if waiting else None

    def __len__(self) -> int:
        return self._depth + len(self._memory)

    def put(
        self, event_id: str, topic: str, payload: bytes, created_at: float | None = None
    ) -> bool:
        """Commit an event; False if the outbox is full (the event is lost, loudly).

        An event id already waiting is not stored twice. If the file cannot be
        written, the event waits in memory (see the module's description).
        """
        if len(self) >= self.max_events:
            self.refused += 1
            metrics.OUTBOX_REFUSED.inc()
            log.error(
                "outbox %s is full (%d events; the broker has been away too long): "
                "event %s for %s is lost (%d lost so far)",
                self.path,
                len(self),
                event_id,
                topic,
                self.refused,
            )
            return False
        pending = Pending(0, event_id, topic, payload, created_at or time.time())
        self._catch_up()
        # Behind events that wait in memory, so that the order stays that of the decisions.
        error = self._failing if self._memory else self._insert(pending)
        if error:
            self._keep(pending, error)
        else:
            self._writable()
        if self._oldest_at is None:
            self._refresh_oldest()
        return True

    def _insert(self, pending: Pending) -> str:
        """Write an event to the file: "" once it is there, else why it is not."""
        try:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, topic, payload, created_at) "
                "VALUES (?, ?, ?, ?)",
                (pending.event_id, pending.topic, pending.payload, pending.created_at),
            )
        except sqlite3.Error as exc:
            return str(exc)
        self._depth += cursor.rowcount
        return ""

    def _keep(self, pending: Pending, error: str) -> None:
        """Hold an event the file did not take."""
        self.write_errors += 1
        metrics.OUTBOX_WRITE_ERRORS.inc()
        self._failing = error
        if any(kept.event_id == pending.event_id for kept in self._memory):
            return
        self._memory_seq -= 1
        self._memory.append(replace(pending, seq=self._memory_seq))
        log.error(
            "outbox %s: cannot store event %s for %s (%s); it waits in memory until the "
            "file takes it (%d events there, lost if the process stops before)",
            self.path,
            pending.event_id,
            pending.topic,
            error,
            len(self._memory),
        )

    def _catch_up(self) -> None:
        """Retry what the file refused before: deletes, then the events in memory."""
        if self._undeleted:
            self._delete()
        moved = 0
        while self._memory:
            if error := self._insert(self._memory[0]):
                self._failing = error
                break
            self._memory.pop(0)
            moved += 1
        if moved:
            self._writable(moved)

    def _writable(self, moved: int = 0) -> None:
        """A write worked: once nothing waits in memory any more, say so (once)."""
        if self._failing and not self._memory:
            log.warning(
                "outbox %s: writable again (%d events moved there from memory)", self.path, moved
            )
            self._failing = ""

    def oldest(self, limit: int = 100) -> list[Pending]:
        """The events waiting longest, oldest first."""
        self._catch_up()
        return (self._rows(limit) + self._memory)[:limit]

    def oldest_age_s(self, now: float | None = None) -> float:
        """How long the oldest waiting event has waited; 0 when empty."""
        oldest_at = self._oldest_at
        return 0.0 if oldest_at is None else max((now or time.time()) - oldest_at, 0.0)

    def delivered(self, seq: int) -> None:
        """Forget a delivered event. This commit skips the fsync: if a power cut undoes
        it, the event is sent once more, which at-least-once delivery allows."""
        if seq < 0:
            self._memory = [pending for pending in self._memory if pending.seq != seq]
        elif seq not in self._undeleted:
            self._undeleted.add(seq)
            self._depth -= 1
            self._delete()
        self._refresh_oldest()

    def _delete(self) -> None:
        """Delete the delivered rows; on failure they are skipped until a retry works
        (after a restart they would be sent again)."""
        done = sorted(self._undeleted)
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                for start in range(0, len(done), _DELETE_BATCH):
                    batch = done[start : start + _DELETE_BATCH]
                    marks = ",".join("?" * len(batch))
                    self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", batch)
                    self._undeleted.difference_update(batch)
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            self.write_errors += 1
            metrics.OUTBOX_WRITE_ERRORS.inc()
            if str(exc) != self._failing:
                log.error(
                    "outbox %s: cannot delete %d delivered events (%s); retrying",
                    self.path,
                    len(done),
                    exc,
                )
            self._failing = str(exc)
            return
        self._writable()

    def close(self) -> None:
        if self._memory:
            log.error(
                "outbox %s: %d events the file never took are lost: %s",
                self.path,
                len(self._memory),
                ", ".join(f"{pending.event_id} for {pending.topic}" for pending in self._memory),
            )
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
