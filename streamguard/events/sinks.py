"""Where decided events go: stdout is the embedded default, MQTT (events/mqtt.py) the real one."""

import json
import os
import time
from typing import Any, Protocol

from streamguard.events.schema import Event
from streamguard.observability import metrics


class EventSink(Protocol):
    async def publish(self, event: Event) -> None: ...

    def stream_status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """The stream's current state (None: the stream was removed)."""

    def release(self, stream_id: str) -> None:
        """Forget the stream's state: another process holds the stream now and reports it."""

    @property
    def ready(self) -> bool: ...


def count_published(action: str, received_at: float | None) -> None:
    """Count a delivered event, and its latency from the deciding frame's arrival when it
    was decided in this process (``received_at`` None: it was left by an earlier run)."""
    metrics.EVENTS_PUBLISHED.labels(action).inc()
    if received_at is not None:
        metrics.DETECTION_LATENCY.observe(max(time.time() - received_at, 0.0))


class StdoutSink:
    """JSON lines on stdout. Each event is one ``write`` of one line, so lines from
    several worker processes sharing the descriptor never interleave."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd

    async def publish(self, event: Event) -> None:
        os.write(self._fd, (json.dumps(event.to_json(), separators=(",", ":")) + "\n").encode())
        count_published(event.action, event.frame.received_at)

    def stream_status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """States are in the log and /streams already."""

    def release(self, stream_id: str) -> None:
        """Nothing kept."""

    @property
    def ready(self) -> bool:
        return True
