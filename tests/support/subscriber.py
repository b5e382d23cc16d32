"""`mosquitto_sub` as a platform's subscriber would run it, with what it received."""

import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .processes import stop


def mosquitto_pub(port: int, topic: str, payload: str, retain: bool = False) -> None:
    """Publish ``payload`` on ``topic`` at QoS 1 with the ``mosquitto_pub`` client."""
    command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1"]
    command += ["-r"] if retain else []
    subprocess.run([*command, "-t", topic, "-m", payload], check=True, timeout=10)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retained: bool
    at: float  # time.time() when the line was read

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """``mosquitto_sub -q 1`` on ``topic``; ``client_id`` makes the session persistent."""

    port: int
    topic: str = "streamguard/v1/#"
    client_id: str = ""
    user: str = ""
    password: str = ""
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        binary = shutil.which("mosquitto_sub")
        if binary is None:
            raise RuntimeError(
                "mosquitto_sub is needed: install the Debian package mosquitto-clients"
            )
        command = [binary, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", self.topic]
        command += ["-F", "%r %t %x"]  # retain flag, topic, payload as hex: one line each
        if self.client_id:
            command += ["-i", self.client_id, "-c"]
        if self.user:
            command += ["-u", self.user, "-P", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            retained, topic, payload = line.decode().rstrip("\n").split(" ", 2)
            self.messages.append(
                Received(topic, bytes.fromhex(payload), retained == "1", time.time())
            )

    def on(self, kind: str, stream_id: str = "+") -> list[Received]:
        """Messages on ``streamguard/v1/KIND/STREAM_ID`` (``+``: any stream)."""
        prefix = f"streamguard/v1/{kind}/"
        return [
            m
            for m in self.messages
            if m.topic.startswith(prefix) and (stream_id == "+" or m.topic == prefix + stream_id)
        ]

    def probe(self, topic: str) -> bool:
        """Whether this subscriber has subscribed: publish ``{}`` on ``topic`` (one its
        subscription covers) and look for it 0.2 s later."""
        mosquitto_pub(self.port, topic, "{}")
        time.sleep(0.2)
        return any(m.topic == topic for m in self.messages)

    def close(self) -> None:
        stop(self.process, timeout_s=5)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
