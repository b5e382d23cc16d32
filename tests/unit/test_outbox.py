"""The outbox: committed before publishing, in order, once per event id, bounded and loud."""

import logging
import sqlite3

from streamguard.events.outbox import Outbox, adopt_orphans, outbox_path


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
