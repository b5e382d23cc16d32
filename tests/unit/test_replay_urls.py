import pytest

from streamguard.ingest.replay import copy_urls


def test_one_copy_keeps_the_url():
    assert copy_urls("rtmp://h/live/cam", 1) == ["rtmp://h/live/cam"]


def test_copies_number_the_stream_name_and_keep_the_query():
    assert copy_urls("rtmp://h/live/cam?key=1", 3) == [
        "rtmp://h/live/cam-0?key=1",
        "rtmp://h/live/cam-1?key=1",
        "rtmp://h/live/cam-2?key=1",
    ]


def test_placeholder_is_replaced_even_for_one_copy():
    assert copy_urls("rtmp://h/live/{n}/cam", 2) == ["rtmp://h/live/0/cam", "rtmp://h/live/1/cam"]
    assert copy_urls("rtmp://h/live/cam{n}", 1) == ["rtmp://h/live/cam0"]


@pytest.mark.parametrize(("url", "copies"), [("rtmp://h/live/cam", 0), ("rtmp://h/live/", 2)])
def test_bad_requests_are_refused(url, copies):
    with pytest.raises(ValueError):
        copy_urls(url, copies)
