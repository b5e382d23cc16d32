"""Where decided events go: stdout is the embedded default, MQTT (events/mqtt.py) the real one."""

import json
import os
import time
from datetime import datetime
from typing import Any, Protocol

from streamguard.observability import metrics


class EventSink(Protocol):
    async def publish(self, event: dict[str, Any]) -> None: ...

    def stream_status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """The stream's current state (None: the stream was removed)."""

    def release(self, stream_id: str) -> None:
        """Forget the stream's state: another process holds the stream now and reports it."""

    @property
    def ready(self) -> bool: ...


def count_published(event: dict[str, Any]) -> None:
    """Count a delivered event and its latency from the deciding keyframe's arrival."""
    metrics.EVENTS_PUBLISHED.labels(event["action"]).inc()
    received_at = datetime.fromisoformat(event["frame"]["received_at"]).timestamp()
    metrics.DETECTION_LATENCY.observe(max(time.time() - received_at, 0.0))


class StdoutSink:
    """JSON lines on stdout. Each event is one ``write`` of one line, so lines from
    several worker processes sharing the descriptor never interleave."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd

    async def publish(self, event: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(event, separators=(",", ":")) + "\n").encode())
        count_published(event)

    def stream_status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """States are in the log and /streams already."""

    def release(self, stream_id: str) -> None:
        """Nothing kept."""

    @property
    def ready(self) -> bool:
        return True
