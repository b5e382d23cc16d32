"""The outbox: committed before publishing, in order, once per event id, bounded and loud."""

import logging
import sqlite3

from streamguard.events.outbox import Outbox, OutboxError, adopt_orphans, outbox_path


def test_events_wait_in_order_and_survive_reopening(tmp_path):
    path = tmp_path / "state" / "outbox-0.sqlite"
    outbox = Outbox(path)
    for number in range(3):
        assert outbox.put(f"id-{number}", f"t/{number}", b"{}")
    assert outbox.put("id-1", "t/1", b"{}")  # a retried decision is stored once
    assert len(outbox) == 3
    first = outbox.oldest(limit=1)[0]
    outbox.delivered(first.seq)
    outbox.close()

    reopened = Outbox(path)  # as after a restart
    assert [p.event_id for p in reopened.oldest()] == ["id-1", "id-2"]
    assert len(reopened) == 2 and reopened.oldest_age_s() >= 0
    reopened.close()


def test_a_full_outbox_refuses_loudly(tmp_path, caplog):
    outbox = Outbox(tmp_path / "outbox.sqlite", max_events=2)
    assert outbox.put("a", "t", b"1") and outbox.put("b", "t", b"2")
    with caplog.at_level(logging.ERROR, logger="streamguard.outbox"):
        assert not outbox.put("c", "t/cam", b"3")
    assert outbox.refused == 1 and len(outbox) == 2
    assert "is full" in caplog.text and "event c for t/cam is lost" in caplog.text
    outbox.delivered(outbox.oldest(1)[0].seq)
    assert outbox.put("c", "t/cam", b"3")  # room again
    outbox.close()


def test_fewer_processes_adopt_the_events_others_left(tmp_path):
    for number in (0, 1, 2):
        outbox = Outbox(outbox_path(tmp_path, number))
        outbox.put(f"id-{number}", "t", b"{}")
        outbox.close()
    assert adopt_orphans(tmp_path, processes=2) == 1  # outbox-2 has no process now
    assert not outbox_path(tmp_path, 2).exists()
    heir = Outbox(outbox_path(tmp_path, 0))
    assert [p.event_id for p in heir.oldest()] == ["id-0", "id-2"]
    heir.close()


def refuse_growth(outbox: Outbox) -> None:
    """The file cannot grow any more, as on a full disk."""
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count = {pages}")


def test_events_the_file_cannot_take_wait_in_memory_in_order(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    page = b"x" * 3000  # each event needs a page of its own
    assert outbox.put("a", "t/a", page)
    refuse_growth(outbox)
    with caplog.at_level(logging.ERROR, logger="streamguard.outbox"):
        assert outbox.put("b", "t/b", page) and outbox.put("c", "t/c", page)
    assert len(outbox) == 3 and outbox.write_errors == 2
    assert "cannot store event b for t/b (database or disk is full)" in caplog.text
    assert [p.event_id for p in outbox.oldest()] == ["a", "b", "c"]  # the order of decisions
    assert outbox.oldest_age_s() >= 0

    outbox.delivered(outbox.oldest()[1].seq)  # b, sent from memory
    assert [p.event_id for p in outbox.oldest()] == ["a", "c"]
    outbox._db.execute("PRAGMA max_page_count = 1000000")  # space again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamguard.outbox"):
        assert [p.event_id for p in outbox.oldest()] == ["a", "c"]
    assert "writable again (1 events moved there from memory)" in caplog.text
    outbox.close()
    reopened = Outbox(path)  # c made it to the file
    assert [p.event_id for p in reopened.oldest()] == ["a", "c"]
    reopened.close()


def test_a_failed_delete_is_retried_and_the_event_not_sent_again(tmp_path):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    for event_id in ("a", "b", "c"):
        outbox.put(event_id, "t", b"{}")
    writable = outbox._db
    outbox._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    first = outbox.oldest(1)[0]
    outbox.delivered(first.seq)  # the delete fails
    assert outbox.write_errors == 1 and len(outbox) == 2
    assert [p.event_id for p in outbox.oldest()] == ["b", "c"]  # a is not sent again
    outbox._db.close()
    outbox._db = writable
    outbox.delivered(outbox.oldest(1)[0].seq)  # b: a's delete is retried with it
    outbox.close()
    reopened = Outbox(path)
    assert [p.event_id for p in reopened.oldest()] == ["c"]
    reopened.close()


def test_events_still_in_memory_at_close_are_named(tmp_path, caplog):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put("a", "t/a", b"x" * 3000)
    refuse_growth(outbox)
    outbox.put("b", "t/b", b"x" * 3000)
    with caplog.at_level(logging.ERROR, logger="streamguard.outbox"):
        outbox.close()
    assert "1 events the file never took are lost: b for t/b" in caplog.text


class Clock:
    """The outbox's ``time`` module, at a time the test sets."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def deliver(outbox: Outbox, clock: Clock, at: float) -> None:
    """The oldest waiting event acknowledged at ``at``."""
    clock.now = at
    outbox.delivered(outbox.oldest(1)[0].seq)


def test_a_delivered_event_moves_to_the_sent_ledger(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("streamguard.events.outbox.time", clock)
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    outbox.put("a", "t/a", b"{1}", created_at=990.0)
    outbox.put("b", "t/b", b"{2}", created_at=991.0)
    deliver(outbox, clock, 1001.0)
    outbox.close()
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(sent)")]
        sent = db.execute("SELECT * FROM sent").fetchall()
        waiting = db.execute("SELECT event_id FROM outbox").fetchall()
    assert columns == ["event_id", "topic", "payload", "created_at", "acked_at"]
    assert sent == [("a", "t/a", b"{1}", 990.0, 1001.0)] and waiting == [("b",)]


def test_recent_events_are_those_acked_within_the_window_before_the_last_ack(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("streamguard.events.outbox.time", clock)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert outbox.recent(10.0) == []  # nothing acknowledged by this process
    for event_id in "abc":
        outbox.put(event_id, f"t/{event_id}", b"{}")
    for at in (1000.0, 1015.0, 1020.0):  # a, b, c
        deliver(outbox, clock, at)
    clock.now = 5000.0  # however long the broker stayed away
    assert [s.event_id for s in outbox.recent(10.0)] == ["b", "c"]
    outbox.resent(outbox.recent(10.0)[0])  # b's copy acknowledged by the new broker at 5000
    assert [(s.event_id, s.acked_at) for s in outbox.recent(10.0)] == [("b", 5000.0)]
    outbox.close()
    assert Outbox(tmp_path / "outbox.sqlite").recent(1e9) == []  # another process: none


def test_pruning_forgets_old_sent_events_a_batch_at_a_time_and_bounds_the_ledger(
    tmp_path, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr("streamguard.events.outbox.time", clock)
    monkeypatch.setattr("streamguard.events.outbox.PRUNE_BATCH", 2)
    outbox = Outbox(tmp_path / "outbox.sqlite", max_events=4)
    for number in range(6):
        outbox.put(f"id-{number}", "t", b"{}")
        deliver(outbox, clock, 1000.0 + number)

    def ledger() -> list[str]:
        return [row[0] for row in outbox._db.execute("SELECT event_id FROM sent ORDER BY 1")]

    assert outbox.prune(before=0.0) == 2  # beyond max_events: the two oldest
    assert ledger() == ["id-2", "id-3", "id-4", "id-5"]
    assert outbox.prune(before=1004.5) == 2 and outbox.prune(before=1004.5) == 1
    assert ledger() == ["id-5"] and outbox.prune(before=1004.5) == 0
    outbox.close()


def test_fewer_processes_adopt_the_sent_ledgers_others_left(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("streamguard.events.outbox.time", clock)
    for number in (0, 1):
        outbox = Outbox(outbox_path(tmp_path, number))
        outbox.put(f"sent-{number}", "t", b"{}")
        deliver(outbox, clock, 1000.0 + number)
        outbox.put(f"waiting-{number}", "t", b"{}")
        outbox.close()
    assert adopt_orphans(tmp_path, processes=1) == 1
    assert not outbox_path(tmp_path, 1).exists()
    with sqlite3.connect(outbox_path(tmp_path, 0)) as db:
        sent = db.execute("SELECT event_id, acked_at FROM sent ORDER BY 1").fetchall()
    assert sent == [("sent-0", 1000.0), ("sent-1", 1001.0)]


def test_an_orphan_whose_ledger_cannot_be_carried_is_kept(tmp_path, monkeypatch):
    orphan = Outbox(outbox_path(tmp_path, 1))
    orphan.put("a", "t", b"{}")
    orphan.delivered(orphan.oldest(1)[0].seq)
    orphan.close()

    def refuse(self, path):
        raise OutboxError(f"{path}: cannot copy its sent events (disk I/O error)")

    monkeypatch.setattr(Outbox, "take_sent", refuse)
    assert adopt_orphans(tmp_path, processes=1) == 0
    assert outbox_path(tmp_path, 1).exists()  # adopted at the next start instead


def test_the_ledger_keeps_what_the_file_refused_and_still_offers_it_for_resending(
    tmp_path, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr("streamguard.events.outbox.time", clock)
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    outbox.put("a", "t/a", b"{}")  # in the file
    writable = outbox._db
    outbox._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    assert outbox.put("b", "t/b", b"{}")  # the file refuses it: waits in memory
    deliver(outbox, clock, 1000.0)  # a: its move fails
    deliver(outbox, clock, 1001.0)  # b, from memory: its ledger row fails
    assert len(outbox) == 0 and outbox.write_errors >= 3
    assert [(s.event_id, s.acked_at) for s in outbox.recent(5.0)] == [("a", 1000.0), ("b", 1001.0)]
    outbox._db.close()
    outbox._db = writable
    assert outbox.oldest() == []  # retries the move and the ledger row
    outbox.close()
    with sqlite3.connect(path) as db:
        sent = db.execute("SELECT event_id, acked_at FROM sent ORDER BY 1").fetchall()
        waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert sent == [("a", 1000.0), ("b", 1001.0)] and waiting == 0
