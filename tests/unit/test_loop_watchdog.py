"""The event loop's watchdog on a real loop, blocked by a synchronous call on it. Its
exit (the main process of `run`) is tested on a real service in
tests/faults/test_loop_blocked.py."""

import asyncio
import logging
import time

from streamguard.observability import metrics
from streamguard.runtime.loop_watchdog import LoopWatchdog


def stuck_in_a_synchronous_call(seconds: float) -> None:
    time.sleep(seconds)


def test_a_blocked_loop_is_counted_once_and_logged_with_where_it_is_stuck(caplog):
    caplog.set_level(logging.INFO, "streamguard.watchdog")
    before = metrics.EVENT_LOOP_BLOCKED._value.get()

    async def main() -> None:
        with LoopWatchdog(asyncio.get_running_loop(), 0.5, None):
            await asyncio.sleep(0.6)  # beating: nothing to say
            assert metrics.EVENT_LOOP_BLOCKED._value.get() == before
            stuck_in_a_synchronous_call(1.5)
            await asyncio.sleep(0.6)

    asyncio.run(main())
    assert metrics.EVENT_LOOP_BLOCKED._value.get() == before + 1
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    (level, blocked), (_, again) = lines
    assert level == "ERROR" and blocked.startswith("event loop blocked for 0.")
    assert "in stuck_in_a_synchronous_call (" in blocked and "test_loop_watchdog.py:" in blocked
    ran_again_s = float(again.removeprefix("event loop running again after ").split()[0])
    assert 1.2 <= ran_again_s <= 3.0, again


def test_a_loop_that_keeps_running_is_never_reported(caplog):
    before = metrics.EVENT_LOOP_BLOCKED._value.get()

    async def main() -> None:
        with LoopWatchdog(asyncio.get_running_loop(), 0.5, 0.5):  # would exit if blocked
            for _ in range(10):
                stuck_in_a_synchronous_call(0.05)  # short calls: the loop goes on
                await asyncio.sleep(0.05)

    asyncio.run(main())
    assert metrics.EVENT_LOOP_BLOCKED._value.get() == before
    assert "event loop" not in caplog.text
