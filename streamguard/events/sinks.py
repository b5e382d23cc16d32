"""Where decided events go: stdout is the embedded default, MQTT (events/mqtt.py) the real one."""

import json
import os
from typing import Any, Protocol


class EventSink(Protocol):
    async def publish(self, event: dict[str, Any]) -> None: ...

    def status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """The stream's current state (None: the stream was removed)."""

    @property
    def ready(self) -> bool: ...


class StdoutSink:
    """JSON lines on stdout. Each event is one ``write`` of one line, so lines from
    several worker processes sharing the descriptor never interleave."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd

    async def publish(self, event: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(event, separators=(",", ":")) + "\n").encode())

    def status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """States are in the log and /streams already."""

    @property
    def ready(self) -> bool:
        return True
