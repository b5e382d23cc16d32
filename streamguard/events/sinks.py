"""Where decided events go. ``stdout`` is the embedded default; MQTT comes later."""

import json
import os
from typing import Any, Protocol


class EventSink(Protocol):
    async def publish(self, event: dict[str, Any]) -> None: ...

    @property
    def ready(self) -> bool: ...


class StdoutSink:
    """JSON lines on stdout. Each event is one ``write`` of one line, so lines from
    several worker processes sharing the descriptor never interleave."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd

    async def publish(self, event: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(event, separators=(",", ":")) + "\n").encode())

    @property
    def ready(self) -> bool:
        return True
