import asyncio
import random
import threading

from streamguard.backoff import backoff_s
from streamguard.runtime.handoff import NewestQueue
from streamguard.runtime.state import StreamState, Watch


def test_backoff_grows_with_jitter_and_a_cap():
    rng = random.Random(1)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30), (10**6, 30)]:
        delays = [backoff_s(failures, 1, 30, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed


def test_newest_queue_drops_oldest_from_another_thread():
    async def scenario():
        queue = NewestQueue(asyncio.get_running_loop(), maxsize=2)
        producer = threading.Thread(target=lambda: [queue.put_threadsafe(i) for i in range(5)])
        producer.start()
        producer.join()
        await asyncio.sleep(0.05)  # let the loop run the hand-offs
        return [await queue.get(), await queue.get()], queue.dropped, len(queue)

    assert asyncio.run(scenario()) == ([3, 4], 3, 0)


def test_newest_queue_get_waits_for_a_put():
    async def scenario():
        queue = NewestQueue(asyncio.get_running_loop(), maxsize=1)
        waiter = asyncio.create_task(queue.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        threading.Thread(target=queue.put_threadsafe, args=("frame",)).start()
        return await asyncio.wait_for(waiter, 2)

    assert asyncio.run(scenario()) == "frame"


def test_newest_queue_wake_ends_a_wait_without_an_item():
    async def scenario():
        queue = NewestQueue(asyncio.get_running_loop(), maxsize=1)
        waiter = asyncio.create_task(queue.get())
        await asyncio.sleep(0.01)
        queue.wake()
        return await asyncio.wait_for(waiter, 2)

    assert asyncio.run(scenario()) is None


def test_state_transitions_report_changes_once():
    state = StreamState("cam", "rtmp://h/live/***")
    assert state.enter(Watch.WATCHING)
    assert not state.enter(Watch.WATCHING)
    assert state.enter(Watch.RECONNECTING, "cam: read failed")
    assert not state.enter(Watch.RECONNECTING, "cam: read failed")
    assert state.enter(Watch.RECONNECTING, "cam: cannot open (Connection refused)")
    snapshot = state.snapshot()
    assert snapshot["state"] == "reconnecting" and "Connection refused" in snapshot["last_error"]
