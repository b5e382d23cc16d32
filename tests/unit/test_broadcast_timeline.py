"""A worker tells broadcasts apart by their timelines (runtime/broadcast.py): a new one
wherever stream time runs back, so that no later decision can repeat an earlier id."""

from streamguard.runtime.broadcast import Timeline

T0 = 1_800_000_000.0  # a wall-clock time


def test_the_first_frame_begins_a_timeline_named_by_its_start_in_ms():
    timeline = Timeline()
    assert timeline.place(4.0, T0 + 4.0123)
    assert timeline.start_ms == round((T0 + 0.0123) * 1000)
    assert timeline.previous_ms is None and timeline.why == "first frame"
    assert not timeline.place(6.0, T0 + 6.5)  # the same connection going on, late or not


def test_stream_time_running_back_on_one_connection_is_a_new_broadcast():
    """nginx-rtmp keeps players connected while the publisher reconnects."""
    timeline = Timeline()
    timeline.place(10.0, T0 + 10.0)
    first = timeline.start_ms
    assert timeline.place(0.0, T0 + 10.5)  # restarted half a second later
    assert timeline.previous_ms == first and timeline.start_ms == first + 10_500
    assert "went back from 10.000 s to 0.000 s" in timeline.why


def test_a_restart_with_the_same_start_still_gets_its_own_name():
    """A broadcast that lasted less than its restart gap shows the same start again."""
    timeline = Timeline()
    timeline.place(0.4, T0 + 0.4)
    assert timeline.place(0.0, T0)  # its clock went back; same start to the ms
    assert timeline.start_ms == timeline.previous_ms + 1


def test_a_reconnect_to_the_same_broadcast_continues_its_timeline():
    timeline = Timeline()
    timeline.place(4.0, T0 + 4.0)
    timeline.reconnected()
    assert not timeline.place(9.0, T0 + 10.5)  # 1.5 s later than its clock: same broadcast


def test_a_reconnect_to_a_timeline_far_from_the_last_is_a_new_broadcast():
    """A publisher that restarted with stream time still ahead of the last one seen."""
    timeline = Timeline()
    timeline.place(4.0, T0 + 4.0)
    timeline.reconnected()
    assert timeline.place(30.0, T0 + 60.0)
    assert "reconnected to a timeline +30.0 s away" in timeline.why


def test_stream_time_running_back_across_a_reconnect_is_a_new_broadcast():
    timeline = Timeline()
    timeline.place(60.0, T0 + 60.0)
    timeline.reconnected()
    assert timeline.place(0.5, T0 + 61.0)
