"""Events and stream status over MQTT, through the durable outbox.

Kill and review events go to ``PREFIX/v1/{kill,review}/STREAM_ID`` with QoS 1, in
the order they were decided, one at a time: the next is sent once the broker has
acknowledged the previous one. Each stream's state is a retained message on
``PREFIX/v1/status/STREAM_ID`` (the latest state only, so it does not go through
the outbox; it is sent again after every reconnect).

After a lost connection, the events the broker acknowledged within
``resend_after_reconnect_s`` before its last PUBACK are published again, first: mosquitto
acknowledges before it saves, and one killed meanwhile has lost them (events/outbox.py
``recent``). Consumers drop the copies by ``event_id``. The CONNACK's session-present
flag cannot spare those copies when the broker did not restart: a broker restarted from
its last save reports the session present (it was saved before), having lost the
messages acknowledged since (measured: bench/bench_broker.py).
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from streamguard.config.mqtt import MqttSettings
from streamguard.events.broker import client, protocols, topic, version_name
from streamguard.events.outbox import PRUNE_BATCH, Outbox, Sent
from streamguard.events.schema import Event
from streamguard.events.sinks import count_published
from streamguard.infra.redaction import redact
from streamguard.lifecycle import Link
from streamguard.observability import metrics

log = logging.getLogger("streamguard.mqtt")
T = TypeVar("T")
PRUNE_EVERY_S = 600.0  # the ledger's pruning, between deliveries; again in 1 s while behind


class MqttSink:
    """An `EventSink` and a `Service`: ``run`` delivers the outbox until ``stop``."""

    def __init__(self, settings: MqttSettings, outbox: Outbox, identifier: str) -> None:
        self.settings = settings
        self.outbox = outbox
        self.identifier = identifier
        self.link = Link(log)
        self.published = 0
        self._statuses: dict[str, bytes] = {}
        self._decided_here: dict[str, float] = {}  # event id -> its frame's arrival
        self._unsent_statuses: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._protocols = protocols(settings)
        self._protocol_at = 0
        self._expiry: Properties | None = None
        self._connections = 0
        self._prune_at = 0.0  # time.monotonic() of the next pruning of the ledger
        # The outbox's fsync must not stall the event loop (and every stream's decisions).
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="outbox")

    @property
    def ready(self) -> bool:
        """Events can go out now (they are safe in the outbox either way)."""
        return self.link.connected

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.link.connected,
            "error": self.link.last_error,
            "waiting": len(self.outbox),
        }

    async def publish(self, event: Event) -> None:
        """Commit ``event`` to the outbox; the send loop delivers it."""
        payload = json.dumps(event.to_json(), separators=(",", ":")).encode()
        where = topic(self.settings, event.action, event.stream_id)
        if await self._on_disk(self.outbox.put, event.event_id, where, payload):
            # Only what will be delivered: a refused event (full outbox) is never popped.
            self._decided_here[event.event_id] = event.frame.received_at
        self._wake.set()

    async def _on_disk(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._disk, call, *args)

    def stream_status(self, stream_id: str, state: dict[str, Any] | None) -> None:
        """Set the retained status of a stream; None clears it (the stream was removed)."""
        self._statuses[stream_id] = b"" if state is None else json.dumps(state).encode()
        self._unsent_statuses.add(stream_id)
        self._wake.set()

    def release(self, stream_id: str) -> None:
        """Forget the stream's status without touching the retained message, which is the
        new holder's now: sending the last one again after a reconnect would overwrite it."""
        self._statuses.pop(stream_id, None)
        self._unsent_statuses.discard(stream_id)

    def stop(self) -> None:
        """Make ``run`` return once the outbox is empty (or at once if disconnected);
        the caller bounds the wait, and the outbox keeps what was not sent."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Connect, deliver, reconnect on failure; until ``stop``. Closes the outbox."""
        try:
            while not self._stop.is_set():
                if await self._session():
                    return
                await self.link.retry_after_backoff(self._stop)
        finally:
            if waiting := len(self.outbox):
                log.warning("MQTT: %d events left in the outbox for the next start", waiting)
            self._disk.shutdown(wait=True)
            self.outbox.close()

    async def _session(self) -> bool:
        """One connection: True once stopped with the outbox empty, False when lost."""
        protocol = self._protocols[self._protocol_at]
        try:
            async with client(self.settings, self.identifier, protocol) as mqtt:
                self._connected(protocol)
                lost = asyncio.create_task(_connection_lost(mqtt))
                try:
                    if self._connections > 1:
                        await self._resend(mqtt, lost)
                    await self._deliver(mqtt, lost)
                finally:
                    lost.cancel()
                return True
        except aiomqtt.MqttError as exc:
            if not self.link.connected and _refuses_protocol(exc):
                # An older broker: fall back (MQTT 5 -> 3.1.1), and stay there.
                self._protocol_at = (self._protocol_at + 1) % len(self._protocols)
            self._lost(str(exc))
        except Exception as exc:  # a bug must not end delivery: retry, loudly
            log.exception("MQTT: send loop failed")
            self._lost(f"internal error ({exc.__class__.__name__})")
        return False

    def _connected(self, protocol: aiomqtt.ProtocolVersion) -> None:
        self.link.up(
            "MQTT: connected to %s (MQTT %s) as %s; %d events waiting",
            redact(self.settings.url),
            version_name(protocol),
            self.identifier,
            len(self.outbox),
        )
        self._connections += 1
        self._expiry = None
        if protocol == aiomqtt.ProtocolVersion.V5 and self.settings.message_expiry_s:
            # MQTT 5: an event nobody fetched within message_expiry_s is dropped by the broker.
            self._expiry = Properties(PacketTypes.PUBLISH)
            self._expiry.MessageExpiryInterval = self.settings.message_expiry_s
        self._unsent_statuses = set(self._statuses)

    def _lost(self, error: str) -> None:
        metrics.PUBLISH_FAILURES.inc()
        self.link.down(
            error,
            "MQTT: %s unavailable (%s); %d events kept in the outbox; retrying",
            redact(self.settings.url),
            error,
            len(self.outbox),
        )

    async def _resend(self, mqtt: aiomqtt.Client, lost: asyncio.Task[None]) -> None:
        """Publish again what the broker may have acknowledged unsaved before the loss."""
        window_s = self.settings.resend_after_reconnect_s
        again: list[Sent] = await self._on_disk(self.outbox.recent, window_s)
        for sent in again:
            await _unless(
                lost, mqtt.publish(sent.topic, sent.payload, qos=1, properties=self._expiry)
            )
            await self._on_disk(self.outbox.resent, sent)
            metrics.EVENTS_RESENT.inc()
        log.info(
            "MQTT: reconnected: re-sent %d events acknowledged within %g s before the last "
            "acknowledgement (a broker killed before saving loses them; consumers drop copies)",
            len(again),
            window_s,
        )

    async def _prune(self) -> None:
        """Forget ledger events older than ``keep_sent_s``, a batch at a time, rarely."""
        if time.monotonic() < self._prune_at:
            return
        before = time.time() - self.settings.keep_sent_s
        pruned = await self._on_disk(self.outbox.prune, before)
        behind = pruned >= PRUNE_BATCH
        self._prune_at = time.monotonic() + (1.0 if behind else PRUNE_EVERY_S)

    async def _deliver(self, mqtt: aiomqtt.Client, lost: asyncio.Task[None]) -> None:
        """Send statuses and events until stopped; raises MqttError once the connection is lost.

        Every wait also watches ``lost``: otherwise a PUBACK that will never come holds
        delivery until the client's timeout, and an idle sink would not notice at all.
        """
        while True:
            self._wake.clear()
            for stream_id in list(self._unsent_statuses):
                self._unsent_statuses.discard(stream_id)
                where = topic(self.settings, "status", stream_id)
                payload = self._statuses.get(stream_id)
                if payload is None:  # released while an earlier status was being sent
                    continue
                await _unless(lost, mqtt.publish(where, payload, qos=1, retain=True))
                if not payload and not self._statuses.get(stream_id):  # cleared: forget it
                    self._statuses.pop(stream_id, None)
            for pending in await self._on_disk(self.outbox.oldest):
                sent = mqtt.publish(pending.topic, pending.payload, qos=1, properties=self._expiry)
                await _unless(lost, sent)
                await self._on_disk(self.outbox.delivered, pending.seq)
                self.published += 1
                action = pending.topic.rsplit("/", 2)[1]  # PREFIX/v1/ACTION/STREAM_ID
                count_published(action, self._decided_here.pop(pending.event_id, None))
                log.debug("MQTT: event %s delivered to %s", pending.event_id, pending.topic)
            if self._stop.is_set() and not len(self.outbox):
                return
            await self._prune()
            if not len(self.outbox) and not self._unsent_statuses:
                await _unless(lost, self._wake.wait())


async def _connection_lost(mqtt: aiomqtt.Client) -> None:
    """Returns (raising MqttError) when the connection ends: message iteration ends then."""
    async for _ in mqtt.messages:  # nothing is subscribed: this only waits
        pass


async def _unless(lost: asyncio.Task[None], work: Awaitable[T]) -> T:
    """``work``'s result, or the connection's error if it is lost first."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    if not lost.cancelled() and (error := lost.exception()) is not None:
        raise error
    raise aiomqtt.MqttError("connection lost")


def _refuses_protocol(error: aiomqtt.MqttError) -> bool:
    """CONNACK "unacceptable protocol version" (MQTT 3.1.1: 1) or "unsupported" (MQTT 5: 132)."""
    code = getattr(error, "rc", None)
    value = getattr(code, "value", code)
    return value in (1, 132)
