"""A QoS 1 subscription with a persistent session and its own reconnects.

``streamguard enforce`` subscribes to ``PREFIX/v1/kill/+`` and ``streamguard run``
to the control topic. A fixed client id and the persistent session make the broker
keep the subscription and queue messages while the process is down; they arrive
when it reconnects. One log line per connection state change.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from streamguard.backoff import backoff_s
from streamguard.events.broker import MqttSettings, client, protocols
from streamguard.ingest.urls import redact

log = logging.getLogger("streamguard.mqtt")
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 15.0

Handler = Callable[[str, bytes], Awaitable[None]]  # last topic level, payload


class Subscriber:
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
        self.connected = False
        self.last_error = ""
        self._protocols = protocols(settings)

    async def run(self) -> None:
        """Receive and handle messages until cancelled, reconnecting with jittered back-off."""
        failures = 0
        while True:
            error = await self._session()
            failures = 1 if self.connected else failures + 1
            self._lost(error)
            await asyncio.sleep(backoff_s(failures, RETRY_INITIAL_S, RETRY_MAX_S))

    async def _session(self) -> str:
        """Connect (MQTT 5 first, when allowed), subscribe, and handle messages until the
        connection fails; returns the error."""
        error = ""
        for protocol in self._protocols:
            try:
                async with client(self.settings, self.settings.client_id, protocol) as mqtt:
                    await mqtt.subscribe(self.topic, qos=1)
                    self._connected(protocol)
                    async for message in mqtt.messages:
                        payload = message.payload
                        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                        await self.handle(message.topic.value.rpartition("/")[2], data)
                return "connection closed"
            except aiomqtt.MqttError as exc:
                error = str(exc)
                if self.connected:
                    break  # an established connection failed: back off, then MQTT 5 again
        return error

    def _connected(self, protocol: aiomqtt.ProtocolVersion) -> None:
        version = "5" if protocol == aiomqtt.ProtocolVersion.V5 else "3.1.1"
        log.info(
            "MQTT: connected to %s (MQTT %s) as %s; subscribed to %s",
            redact(self.settings.url),
            version,
            self.settings.client_id,
            self.topic,
        )
        self.connected = True
        self.last_error = ""
        self._on_state(True)

    def _lost(self, error: str) -> None:
        first = self.connected or not self.last_error  # later failures only go to debug
        log.log(
            logging.ERROR if first else logging.DEBUG,
            "MQTT: %s unavailable (%s); retrying with back-off",
            redact(self.settings.url),
            error,
        )
        self.connected = False
        self.last_error = error
        self._on_state(False)
