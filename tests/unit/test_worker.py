import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist
from streamguard.config import StreamConfig
from streamguard.config.model import IngestSettings
from streamguard.config.policy import Policy
from streamguard.hashing import Luma, hash_luma
from streamguard.ingest.sampler import Frame
from streamguard.runtime.state import Watch
from streamguard.runtime.worker import MAX_RTMP_OPEN_S, StreamWorker

RNG = np.random.default_rng(5)
FLAGGED = np.kron(RNG.integers(0, 256, (36, 64), dtype=np.uint8), np.ones((10, 10), np.uint8))
OTHER = np.kron(RNG.integers(0, 256, (36, 64), dtype=np.uint8), np.ones((10, 10), np.uint8))


class ListSink:
    def __init__(self):
        self.events = []
        self.states = []

    async def publish(self, event):
        self.events.append(event.to_json())

    def stream_status(self, stream_id, state):
        self.states.append(state and state["state"])

    def release(self, stream_id):
        self.states.append("released")

    @property
    def ready(self):
        return True


def frame(pixels, pts_s):
    return Frame("s", pts_s, pts_s, Luma(pixels), 640, 360)


def flagged_blocklist() -> Blocklist:
    (pdq,) = hash_luma(Luma(FLAGGED), ["pdq"])
    blocklist = Blocklist()
    blocklist.put([0], [Entry("pdq", pdq.digest, "e1", "l", "test")])
    return blocklist


def worker_for(blocklist, sink, pool, policy: Policy) -> StreamWorker:
    # A refused scheme: the reader thread stops at once and frames come from the test.
    config = StreamConfig("s", "gopher://h/x")
    return StreamWorker(config, IngestSettings(), blocklist, sink, pool, "w", policy)


def test_one_event_per_incident_and_bugs_cost_a_frame_not_the_stream():
    blocklist, sink = flagged_blocklist(), ListSink()
    policy = Policy(incident_gap_s=1.5, keep_watching_after_kill=True)

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            worker = worker_for(blocklist, sink, pool, policy)
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.1)
            real_matcher = worker._matcher

            def broken(_frame):
                raise RuntimeError("bug")

            worker._matcher = broken
            worker._queue.put_threadsafe(frame(FLAGGED, 0.0))
            await asyncio.sleep(0.1)
            worker._matcher = real_matcher
            for pts_s, pixels in enumerate([FLAGGED, FLAGGED, OTHER, FLAGGED], start=2):
                worker._queue.put_threadsafe(frame(pixels, float(pts_s)))
                await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return worker.snapshot()

    state = asyncio.run(scenario())
    assert state["state"] == "failed" and "not enabled" in state["last_error"]
    assert state["internal_errors"] == 1
    # flagged, flagged (same incident), other, flagged (a new incident: 2 s since a match)
    assert [event["frame"]["pts_s"] for event in sink.events] == [2.0, 5.0]
    assert {event["action"] for event in sink.events} == {"kill"}
    assert state["detections"] == 2
    assert sink.states[-1] == "failed"  # each state change reached the sink


def test_a_kill_ends_the_watch():
    """Without looks after a kill the task ends by itself; with them (the default) it
    ends when the stream is stopped, having repeated nothing (the URL is unreachable)."""
    blocklist, sink = flagged_blocklist(), ListSink()

    async def scenario(policy: Policy) -> dict:
        with ThreadPoolExecutor(1) as pool:
            worker = worker_for(blocklist, sink, pool, policy)
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.1)
            worker._queue.put_threadsafe(frame(FLAGGED, 4.0))
            if policy.still_live_after_s:
                await asyncio.sleep(0.5)
                assert not task.done()  # looking at the killed stream
                worker.stop()
            await asyncio.wait_for(task, 5)
            return worker.snapshot()

    for policy in (Policy(still_live_after_s=0), Policy()):
        sink.events.clear()
        state = asyncio.run(scenario(policy))
        assert state["state"] == "killed" and len(sink.events) == 1
        assert state["escalations"] == 0 and sink.states[-1] == "killed"


def test_a_state_reported_late_does_not_outlive_retirement():
    """The reader thread's last state can reach the event loop after the stream was
    retired: it must not bring back a removed stream's retained status."""
    sink = ListSink()

    async def scenario(clear_status: bool) -> list:
        with ThreadPoolExecutor(1) as pool:
            worker = worker_for(flagged_blocklist(), sink, pool, Policy())
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.1)
            sink.states.clear()
            worker._publish_status()  # as from the reader thread, just before retire()
            worker.retire(clear_status=clear_status)
            await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return list(sink.states)

    assert asyncio.run(scenario(clear_status=True)) == [None]  # removed: status cleared
    assert asyncio.run(scenario(clear_status=False)) == ["released"]  # handed over


def test_a_reader_still_opening_at_shutdown_neither_changes_the_state_nor_fails():
    """The reader thread is a daemon: one that finishes opening its source after the
    process stopped must not show the stream as watching, nor fail on the closed loop."""
    sink = ListSink()

    async def scenario() -> StreamWorker:
        with ThreadPoolExecutor(1) as pool:
            worker = worker_for(flagged_blocklist(), sink, pool, Policy())
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.1)
            worker.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return worker

    worker = asyncio.run(scenario())  # the loop is closed now
    worker._enter(Watch.WATCHING)  # as the late reader thread would
    worker._stop.clear()
    worker._enter(Watch.RECONNECTING)  # a state change reaching a closed loop
    assert worker.snapshot()["state"] == "reconnecting"
    assert sink.states.count("watching") == 0


def test_rtmp_open_patience_stays_at_its_cap_however_many_opens_timed_out():
    """Each timed-out RTMP open doubles the next one's timeouts, up to MAX_RTMP_OPEN_S;
    after a day of them (about a thousand) the doubling must not overflow a float."""
    config = StreamConfig("s", "rtmp://127.0.0.1/live/s")
    worker = StreamWorker(config, IngestSettings(), Blocklist(), ListSink(), None, "w", Policy())
    patience = []
    for timeouts in (0, 1, 2, 3, 1023, 1024, 100_000):
        worker._open_timeouts = timeouts
        patience.append(worker._patience(10.0))
    assert patience == [10.0, 20.0, 40.0, *[MAX_RTMP_OPEN_S] * 4]
