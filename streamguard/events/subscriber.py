"""A QoS 1 subscription with a persistent session and its own reconnects.

``streamguard enforce`` subscribes to ``PREFIX/v1/kill/+`` and ``streamguard run``
to the control topic. A fixed client id and the persistent session make the broker
keep the subscription and queue messages while the process is down; they arrive
when it reconnects. One log line per connection state change.

A message is acknowledged (PUBACK) only once its handler has returned, so a crash
while it is handled leaves it at the broker, which sends it again on the next
connect. aiomqtt acknowledges on receipt and has no option against it (2.5.1; its
issue #345), so paho's manual acknowledgement is switched on beneath it. A handler
that cannot take a message in charge (its store failed) raises :class:`Unhandled`:
the message stays unacknowledged and the connection is dropped, because a broker
sends an unacknowledged message again only on a new connection (MQTT 3.1.1 4.4,
MQTT 5 4.4). Handlers run one at a time, so acknowledgements go in order anyway.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from streamguard.config.mqtt import MqttSettings
from streamguard.errors import StreamguardError
from streamguard.events.broker import client, protocols, version_name
from streamguard.infra.redaction import redact
from streamguard.lifecycle import Link

log = logging.getLogger("streamguard.mqtt")

Handler = Callable[[str, bytes], Awaitable[None]]  # last topic level, payload


class Unhandled(StreamguardError):
    """Raised by a handler that could not take a message in charge: it is not
    acknowledged, and the broker sends it again after the reconnect that follows."""


class Subscriber:
    """A `Service`: ``run`` receives until ``stop``."""

    def __init__(
        self,
        settings: MqttSettings,
        topic: str,
        handle: Handler,
        on_state: Callable[[bool], object] = lambda connected: None,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.topic = topic
        self._on_state = on_state
        self.link = Link(log)
        self._protocols = protocols(settings)
        self._stop = asyncio.Event()

    def status(self) -> dict[str, Any]:
        return {"connected": self.link.connected, "error": self.link.last_error}

    def stop(self) -> None:
        """Make ``run`` return at once (a message being handled is cancelled: QoS 1 brings
        it again with the persistent session)."""
        self._stop.set()

    async def run(self) -> None:
        """Receive and handle messages until ``stop``, reconnecting with jittered back-off."""
        while not self._stop.is_set():
            session = asyncio.create_task(self._session())
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({session, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not session.done():
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
                return
            self._lost(session.result())
            await self.link.retry_after_backoff(self._stop)

    async def _session(self) -> str:
        """Connect (MQTT 5 first, when allowed), subscribe, and handle messages until the
        connection fails; returns the error."""
        error = ""
        for protocol in self._protocols:
            try:
                mqtt = client(self.settings, self.settings.client_id, protocol)
                # Before connecting: messages queued in the session follow the CONNACK.
                mqtt._client.manual_ack_set(True)  # aiomqtt has no option for it
                async with mqtt:
                    await mqtt.subscribe(self.topic, qos=1)
                    self._connected(protocol)
                    async for message in mqtt.messages:
                        payload = message.payload
                        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                        try:
                            await self.handle(message.topic.value.rpartition("/")[2], data)
                        except Unhandled as exc:
                            return f"a message not acknowledged: {exc}"
                        mqtt._client.ack(message.mid, message.qos)
                return "connection closed"
            except aiomqtt.MqttError as exc:
                error = str(exc)
                if self.link.connected:
                    break  # an established connection failed: back off, then MQTT 5 again
        return error

    def _connected(self, protocol: aiomqtt.ProtocolVersion) -> None:
        self.link.up(
            "MQTT: connected to %s (MQTT %s) as %s; subscribed to %s",
            redact(self.settings.url),
            version_name(protocol),
            self.settings.client_id,
            self.topic,
        )
        self._on_state(True)

    def _lost(self, error: str) -> None:
        url = redact(self.settings.url)
        self.link.down(error, "MQTT: %s unavailable (%s); retrying with back-off", url, error)
        self._on_state(False)
