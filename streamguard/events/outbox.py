"""Decided events waiting for the broker, in a SQLite file that survives restarts.

An event is committed here (fsync) before anything tries to publish it, and leaves the
``outbox`` table only once the broker has acknowledged it (PUBACK). Delivery is therefore
at least once: an event whose PUBACK was lost is sent again, with the same ``event_id``.

A PUBACK is not the end of the risk: mosquitto acknowledges before it saves
(``autosave_interval``), so a broker killed right after it loses what it had not saved.
An acknowledged event therefore moves, in the same transaction, to the ``sent`` table
(the ledger), from which the MQTT sink publishes the recently acknowledged ones again
after it lost its connection (``recent``), and which an audit reads to prove what was
delivered. Ledger rows older than ``[mqtt] keep_sent_s`` are pruned a batch at a time,
off the per-event path (``prune``).

The outbox is bounded. When it is full a new event is refused, counted and logged
as an error: a full outbox means the broker has been unreachable for a long time,
and an operator must know, rather than the disk filling up.

A file that cannot be written (disk full, I/O error) does not lose events either:
each write error is counted and logged, and the event waits in memory, behind those
in the file, until the file takes it (tried again at the next event and whenever the
sender reads the outbox). Meanwhile it is sent from memory, and would not survive a
restart. Ledger rows the file refuses wait in memory the same way.
"""

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from streamguard.config.model import DEFAULT_MAX_EVENTS
from streamguard.errors import StreamguardError
from streamguard.observability import metrics

log = logging.getLogger("streamguard.outbox")
_DELETE_BATCH = 500  # rows per DELETE, below SQLite's limit on bound parameters
PRUNE_BATCH = 5000  # ledger rows one prune deletes at most (about 20 ms on a laptop SSD)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    event_id TEXT PRIMARY KEY,
    topic TEXT,
    payload BLOB,
    created_at REAL,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS sent_by_acked_at ON sent (acked_at);
"""
_SENT_COLUMNS = "event_id, topic, payload, created_at, acked_at"


class OutboxError(StreamguardError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    topic: str
    payload: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class Sent:
    """A row of the ledger: an event the broker acknowledged at ``acked_at``."""

    event_id: str
    topic: str
    payload: bytes
    created_at: float
    acked_at: float


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
        self._unmoved: dict[int, float] = {}  # seq -> acked_at of rows whose move failed
        self._unrecorded: list[Sent] = []  # ledger rows the file did not take yet
        self.last_acked_at: float | None = None  # this process's last PUBACK
        self._failing = ""  # the last write error, until a write works again
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a decided kill survives a power cut
            self._db.executescript(_SCHEMA)
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
            (limit + len(self._unmoved),),
        )
        return [Pending(*row) for row in rows if row[0] not in self._unmoved][:limit]

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
        """Retry what the file refused before: moves to the ledger, ledger rows, then the
        events in memory."""
        if self._unmoved:
            self._move()
        if self._unrecorded:
            self._record()
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
        """Move a delivered event to the ledger. This commit skips the fsync: if a power
        cut undoes it, the event is sent once more, which at-least-once delivery allows."""
        acked_at = self.last_acked_at = time.time()
        if seq < 0:
            for pending in [pending for pending in self._memory if pending.seq == seq]:
                self._memory.remove(pending)
                self._unrecorded.append(_sent(pending, acked_at))
            self._record()
        elif seq not in self._unmoved:
            self._unmoved[seq] = acked_at
            self._depth -= 1
            self._move()
        self._refresh_oldest()

    def resent(self, sent: Sent) -> None:
        """The broker acknowledged ``sent`` again: a broker that dies now may lose this
        copy too, so the ledger takes the new time."""
        acked_at = self.last_acked_at = time.time()
        self._unrecorded.append(replace(sent, acked_at=acked_at))
        self._record()

    def recent(self, window_s: float) -> list[Sent]:
        """The events acknowledged within ``window_s`` before this process's last PUBACK,
        oldest first: those a broker that died since may have acknowledged unsaved.

        A broker saves everything it acknowledged more than its save interval before it
        died, and it died after its last PUBACK; anchored there, the window needs no clock
        of the outage itself (how long the loss took to notice, how long the broker was away).
        """
        if self.last_acked_at is None:
            return []
        since = self.last_acked_at - window_s
        found: dict[str, Sent] = {}
        try:
            rows = self._db.execute(
                f"SELECT {_SENT_COLUMNS} FROM sent WHERE acked_at >= ? ORDER BY acked_at LIMIT ?",
                (since, self.max_events),
            ).fetchall()
            marks = ",".join("?" * len(self._unmoved))
            rows += [
                (*row[1:], self._unmoved[row[0]])
                for row in self._db.execute(
                    "SELECT seq, event_id, topic, payload, created_at FROM outbox "
                    f"WHERE seq IN ({marks})",
                    list(self._unmoved),
                )
            ]
        except sqlite3.Error as exc:
            log.error("outbox %s: cannot read the ledger (%s)", self.path, exc)
            rows = []
        for sent in [Sent(*row) for row in rows] + self._unrecorded:
            if sent.acked_at >= since:
                found[sent.event_id] = sent
        return sorted(found.values(), key=lambda sent: sent.acked_at)[-self.max_events :]

    def prune(self, before: float) -> int:
        """Delete up to a batch of ledger rows acknowledged before ``before``, or beyond the
        newest ``max_events``; how many went."""
        try:
            beyond = self._db.execute(
                "SELECT acked_at FROM sent ORDER BY acked_at DESC LIMIT 1 OFFSET ?",
                (self.max_events,),
            ).fetchone()
            with self._relaxed():
                cursor = self._db.execute(
                    "DELETE FROM sent WHERE event_id IN (SELECT event_id FROM sent "
                    "WHERE acked_at < ? OR acked_at <= ? ORDER BY acked_at LIMIT ?)",
                    (before, beyond[0] if beyond else float("-inf"), PRUNE_BATCH),
                )
        except sqlite3.Error as exc:
            self._write_failed(exc, "cannot prune the ledger")
            return 0
        return cursor.rowcount

    def take_sent(self, path: Path) -> int:
        """Copy the ledger of the outbox file ``path`` (closed) into this one; rows of
        event ids already here are kept as they are. Raises OutboxError."""
        try:
            self._db.execute("ATTACH DATABASE ? AS orphan", (str(path),))
            try:
                cursor = self._db.execute(
                    f"INSERT OR IGNORE INTO sent ({_SENT_COLUMNS}) "
                    f"SELECT {_SENT_COLUMNS} FROM orphan.sent"
                )
            finally:
                self._db.execute("DETACH DATABASE orphan")
        except sqlite3.Error as exc:
            raise OutboxError(f"{path}: cannot copy its sent events ({exc})") from None
        return cursor.rowcount

    @contextmanager
    def _relaxed(self) -> Iterator[None]:
        """Commits without the fsync, for what at-least-once delivery allows to be undone."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def _move(self) -> None:
        """Move the delivered rows to the ledger; on failure they are skipped until a retry
        works (after a restart they would be sent again)."""
        done = sorted(self._unmoved.items())
        try:
            with self._relaxed():
                for start in range(0, len(done), _DELETE_BATCH):
                    batch = done[start : start + _DELETE_BATCH]
                    seqs = [seq for seq, _ in batch]
                    with self._transaction():
                        self._db.executemany(
                            f"INSERT OR REPLACE INTO sent ({_SENT_COLUMNS}) SELECT event_id, "
                            "topic, payload, created_at, ? FROM outbox WHERE seq = ?",
                            [(acked_at, seq) for seq, acked_at in batch],
                        )
                        marks = ",".join("?" * len(seqs))
                        self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs)
                    for seq in seqs:
                        del self._unmoved[seq]
        except sqlite3.Error as exc:
            self._write_failed(exc, f"cannot move {len(done)} delivered events to the ledger")
            return
        self._writable()

    def _record(self) -> None:
        """Write the ledger rows waiting in memory (events sent from memory, re-sends)."""
        try:
            with self._relaxed():
                self._db.executemany(
                    f"INSERT OR REPLACE INTO sent ({_SENT_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    [
                        (s.event_id, s.topic, s.payload, s.created_at, s.acked_at)
                        for s in self._unrecorded
                    ],
                )
        except sqlite3.Error as exc:
            del self._unrecorded[: -self.max_events]  # bounded, as the file's ledger is
            self._write_failed(exc, f"cannot record {len(self._unrecorded)} sent events")
            return
        self._unrecorded.clear()
        self._writable()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write_failed(self, exc: sqlite3.Error, what: str) -> None:
        """Count a failed write, logged once while the same error lasts; retried later."""
        self.write_errors += 1
        metrics.OUTBOX_WRITE_ERRORS.inc()
        if str(exc) != self._failing:
            log.error("outbox %s: %s (%s); retrying", self.path, what, exc)
        self._failing = str(exc)

    def close(self) -> None:
        if self._memory:
            log.error(
                "outbox %s: %d events the file never took are lost: %s",
                self.path,
                len(self._memory),
                ", ".join(f"{pending.event_id} for {pending.topic}" for pending in self._memory),
            )
        self._db.close()


def _sent(pending: Pending, acked_at: float) -> Sent:
    return Sent(pending.event_id, pending.topic, pending.payload, pending.created_at, acked_at)


def outbox_path(state_dir: Path, number: int) -> Path:
    """The outbox of worker process ``number``."""
    return state_dir / f"outbox-{number}.sqlite"


def adopt_orphans(state_dir: Path, processes: int, max_events: int = DEFAULT_MAX_EVENTS) -> int:
    """Move events waiting in outboxes of process numbers >= ``processes`` into outbox 0,
    and their ledgers into its ledger.

    After a restart with fewer worker processes, nobody would read those files again.
    A file whose events outbox 0 could not all take (disk errors) is kept for the next
    start. Returns how many waiting events moved.
    """
    moved = 0
    for path in sorted(state_dir.glob("outbox-*.sqlite")):
        number = path.stem.removeprefix("outbox-")
        if not number.isdigit() or int(number) < processes:
            continue
        orphan, heir = Outbox(path), Outbox(outbox_path(state_dir, 0), max_events)
        waiting = orphan.oldest(limit=orphan.max_events)
        orphan.close()
        for pending in waiting:
            heir.put(pending.event_id, pending.topic, pending.payload, pending.created_at)
        try:
            heir.take_sent(path)
        except OutboxError as exc:
            log.error("%s", exc)
            heir.write_errors += 1
        carried = not heir.write_errors
        heir.close()
        if not carried:  # adopted again at the next start; the heir stores each id once
            log.error("outbox %s: not all of it could be carried to outbox 0; kept", path)
            continue
        moved += len(waiting)
        for leftover in state_dir.glob(f"{path.name}*"):  # with its -wal and -shm files
            leftover.unlink()
        log.info("outbox %s: its events, and its sent events, now in outbox 0", path)
    return moved
