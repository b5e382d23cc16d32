"""``[mqtt]``: the broker events and control messages go through (events/broker.py)."""

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PREFIX = "streamguard"


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str = ""  # empty: events go to stdout
    prefix: str = DEFAULT_PREFIX
    client_id: str = ""  # empty: derived from the worker id
    persistent_session: bool = True  # the broker keeps subscriptions and QoS 1 messages
    protocol: str = "auto"  # "5", "3.1.1", or "auto": MQTT 5, else 3.1.1
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    message_expiry_s: int = 3600  # MQTT 5: brokers drop undelivered events after this
    keepalive_s: int = 30
    timeout_s: float = 10.0
