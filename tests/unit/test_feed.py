"""Reading ahead (ingest/feed.py): the publisher's burst is decoded in full, streamguard's
own backlog is skipped to the newest keyframe, and reading waits for a hung decode."""

import time
from dataclasses import dataclass

import pytest

from streamguard.ingest.feed import PacketFeed
from streamguard.ingest.stats import SampleStats


@dataclass(frozen=True)
class Packet:
    number: int
    is_keyframe: bool
    size: int = 1000


def gops(count: int, gop: int = 30) -> list[Packet]:
    return [Packet(n, n % gop == 0) for n in range(count * gop)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read_all_first(feed: PacketFeed, total: int) -> None:
    """Wait until the reading thread has queued every packet (it never blocks here)."""
    deadline = time.monotonic() + 5
    while len(feed._inbox) < total + 1 and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_burst_is_decoded_in_full():
    """Four GOPs arrive at once (a publisher's stall, then its backlog); decoding keeps up."""
    packets, clock, stats = gops(4), Clock(), SampleStats()
    feed = PacketFeed(iter(packets), stats, max_backlog_s=4.0, clock=clock)
    read_all_first(feed, len(packets))
    out = []
    for packet, _ in feed:
        clock.now += 0.001  # decoding: 1 ms a packet
        out.append(packet.number)
    assert out == list(range(len(packets)))
    assert stats.live_edge_skips == 0 and stats.backlog_s < 1


def test_falling_behind_skips_to_the_newest_keyframe_and_counts_what_it_passed():
    packets, clock, stats = gops(6), Clock(), SampleStats()
    feed = PacketFeed(iter(packets), stats, max_backlog_s=4.0, clock=clock)
    read_all_first(feed, len(packets))
    clock.now += 5.0  # decoding was held up for 5 s: everything read waits
    out = [packet.number for packet, _ in feed]
    assert out == list(range(150, 180))  # the newest GOP, from its keyframe
    assert stats.live_edge_skips == 1
    assert stats.picker.skipped["decode_backlog"] == 5  # the keyframes passed over


def test_reading_waits_while_too_much_is_undecoded():
    read = []

    def packets():
        for packet in gops(10):
            read.append(packet.number)
            yield packet

    feed = PacketFeed(packets(), SampleStats(), max_backlog_s=4.0, max_bytes=20_000)
    deadline = time.monotonic() + 2
    while len(read) < 21 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(read) == 21  # 21 kB read and none decoded: it waits
    iterator = iter(feed)
    next(iterator)
    deadline = time.monotonic() + 2
    while len(read) < 22 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(read) >= 22  # room again
    feed.close()


def test_an_error_while_reading_reaches_the_decoder_after_what_came_before():
    def packets():
        yield Packet(0, True)
        raise RuntimeError("read failed")

    feed = PacketFeed(packets(), SampleStats(), max_backlog_s=4.0)
    iterator = iter(feed)
    assert next(iterator)[0].number == 0
    with pytest.raises(RuntimeError, match="read failed"):
        next(iterator)
