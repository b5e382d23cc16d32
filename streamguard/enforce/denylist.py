"""The deny list and the handled event ids, in SQLite so a restart forgets neither.

Stream keys are not stored: an entry is keyed by the SHA-256 of ``APP/KEY``, which is
all the publish hook needs to refuse a key. The stream id and the app are kept for
logs and for finishing a drop that a restart interrupted.

A kill is stored in one transaction (:meth:`DenyList.transaction`: its event id and
its denial together), committed with ``synchronous=FULL`` (the journal and the
database are synced before COMMIT returns): enforce acknowledges the kill to the
broker only after that, so no crash leaves a kill acknowledged but not stored, nor
its id stored without its denial (the kill sent again would be taken for a copy).
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamguard.enforce.targets import Target
from streamguard.errors import StreamguardError

SEEN_KEEP_S = 8 * 24 * 3600  # longer than the 7-day MQTT session that can redeliver events
# How long a write waits for another process's lock (Python's default, made explicit);
# the event loop waits with it, as it does for every access to this file.
BUSY_TIMEOUT_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS denied (
    digest TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL,
    app TEXT NOT NULL,
    denied_at REAL NOT NULL,
    until REAL NOT NULL,
    dropped_at REAL
);
CREATE TABLE IF NOT EXISTS seen_events (event_id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
"""


class StateError(StreamguardError):
    """The state file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Denial:
    digest: str
    stream_id: str
    app: str
    denied_at: float
    until: float
    dropped_at: float | None  # None: the publisher has not been dropped yet


class DenyList:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{path}: cannot open the enforcement state ({exc})") from None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """What is written inside is committed together, durably, on leaving, or not at
        all: raises StateError if the database cannot be written (locked by another
        process for BUSY_TIMEOUT_S, disk full, I/O error)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot write the enforcement state ({exc})") from None
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:  # a failed COMMIT may keep it open, or not
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                message = f"{self.path}: cannot write the enforcement state ({exc})"
                raise StateError(message) from None
            raise

    def first_sight(self, event_id: str, now: float) -> bool:
        """Record ``event_id``; False if it was handled before."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO seen_events VALUES (?, ?)", (event_id, now)
        )
        return cursor.rowcount == 1

    def deny(self, target: Target, stream_id: str, now: float, until: float) -> Denial | None:
        """Refuse ``target`` until ``until``; returns the entry it had, if still in force."""
        previous = self.denial(target, now)
        if previous is None:
            self._db.execute(
                "INSERT OR REPLACE INTO denied VALUES (?, ?, ?, ?, ?, NULL)",
                (target.digest, stream_id, target.app, now, until),
            )
        else:
            self._db.execute(
                "UPDATE denied SET until = max(until, ?) WHERE digest = ?", (until, target.digest)
            )
        self.prune(now)
        return previous

    def denial(self, target: Target, now: float) -> Denial | None:
        """The entry refusing ``target`` now, if any."""
        row = self._db.execute(
            "SELECT * FROM denied WHERE digest = ? AND until > ?",
            (target.digest, now),
        ).fetchone()
        return Denial(*row) if row else None

    def dropped(self, target: Target, now: float) -> None:
        self._db.execute("UPDATE denied SET dropped_at = ? WHERE digest = ?", (now, target.digest))

    def undropped(self, now: float) -> list[Denial]:
        """Entries in force whose publisher was never confirmed dropped."""
        rows = self._db.execute(
            "SELECT * FROM denied WHERE dropped_at IS NULL AND until > ? ORDER BY denied_at",
            (now,),
        )
        return [Denial(*row) for row in rows]

    def count(self, now: float) -> int:
        row = self._db.execute("SELECT count(*) FROM denied WHERE until > ?", (now,)).fetchone()
        count: int = row[0]
        return count

    def prune(self, now: float) -> None:
        """Forget expired entries and old event ids."""
        self._db.execute("DELETE FROM denied WHERE until <= ?", (now,))
        self._db.execute("DELETE FROM seen_events WHERE seen_at < ?", (now - SEEN_KEEP_S,))
