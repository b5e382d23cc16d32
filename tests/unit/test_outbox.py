"""The outbox: committed before publishing, in order, once per event id, bounded and loud."""

import logging

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
