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
    # After a lost connection, events acknowledged within this before the last PUBACK are
    # published again: a broker killed meanwhile may have acked them unsaved. 5x the save
    # interval of deploy/mosquitto.conf (autosave every 1 s, i.e. at most 2 s apart).
    resend_after_reconnect_s: float = 10.0
    keep_sent_s: float = 7 * 24 * 3600.0  # the outbox's ledger of delivered events

    def __post_init__(self) -> None:
        if self.keep_sent_s < self.resend_after_reconnect_s:
            raise ValueError("keep_sent_s must be at least resend_after_reconnect_s")
