"""Hand frames from a stream's reader thread to the event loop, newest first.

A slow consumer must never make latency pile up: when the queue is full the
oldest frame is dropped (and counted), so what gets hashed next is always the
most recent keyframe.
"""

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class NewestQueue(Generic[T]):
    """Bounded; ``put_threadsafe`` never blocks the producer thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        maxsize: int,
        on_drop: Callable[[], object] = lambda: None,
    ) -> None:
        self._loop = loop
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._on_drop = on_drop
        self.dropped = 0

    def _drop(self) -> None:
        self.dropped += 1
        self._on_drop()

    def put_threadsafe(self, item: T) -> None:
        """Called from the producer thread; a frame arriving during shutdown is dropped."""
        try:
            self._loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # the event loop has closed
            self._drop()

    def _put(self, item: T) -> None:
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self._drop()
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T | None:
        """The oldest item kept, once there is one; None if ``wake`` came first."""
        if not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft() if self._items else None

    def wake(self) -> None:
        """Let a waiting ``get`` return None: its consumer was told to stop from elsewhere
        (the producer, stopped too, would never put another item)."""
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)
