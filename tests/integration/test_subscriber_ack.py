"""The kill subscription acknowledges a message only once its handler has returned,
against a real mosquitto, in MQTT 5 and 3.1.1: a message whose handler raises
Unhandled, or that is being handled when the subscription stops, comes again; a
handled one never does."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import paho.mqtt.publish as mqtt_publish
import pytest

from streamguard.config.mqtt import MqttSettings
from streamguard.events.subscriber import Handler, Subscriber, Unhandled

from ..support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
TOPIC = "streamguard/v1/kill/"


async def publish(broker: Mosquitto, stream_id: str, payload: bytes) -> None:
    await asyncio.to_thread(
        mqtt_publish.single, TOPIC + stream_id, payload, qos=1, port=broker.port
    )


async def eventually(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.05)


class Subscription:
    """A running Subscriber with the fixed client id of the test (one persistent session)."""

    def __init__(self, settings: MqttSettings, handle: Handler) -> None:
        self.subscriber = Subscriber(settings, TOPIC + "+", handle)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self.task = asyncio.create_task(self.subscriber.run())
        await eventually(lambda: self.subscriber.link.connected, 30, "subscribed")

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.task is not None
        self.subscriber.stop()
        await asyncio.wait_for(self.task, 30)


def recorder(received: list[bytes], then: Callable[[bytes], Awaitable[None]]) -> Handler:
    async def handle(stream_id: str, payload: bytes) -> None:
        received.append(payload)
        await then(payload)

    return handle


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_message_is_acknowledged_only_once_handled(mosquitto: Mosquitto, protocol, caplog):
    settings = MqttSettings(
        url=mosquitto.url(), client_id=f"enforce-ack-{protocol}", protocol=protocol, timeout_s=5
    )

    async def scenario() -> None:
        # The store fails the first time: no PUBACK, a reconnect, and the message again.
        received: list[bytes] = []

        async def fail_once(payload: bytes) -> None:
            if received.count(payload) == 1:
                raise Unhandled("the store is locked")

        async with Subscription(settings, recorder(received, fail_once)):
            await publish(mosquitto, "cam", b"first")
            await eventually(lambda: len(received) == 2, 30, "the message sent again")
            assert received == [b"first", b"first"]
        assert "(a message not acknowledged: the store is locked)" in caplog.text

        # Stopped while a message is being handled (as a crash would): it comes again.
        stuck: list[bytes] = []

        async def never(payload: bytes) -> None:
            await asyncio.Event().wait()

        async with Subscription(settings, recorder(stuck, never)):
            await publish(mosquitto, "cam", b"second")
            await eventually(lambda: stuck, 30, "the second message received")
        again: list[bytes] = []

        async def done(payload: bytes) -> None:
            pass

        async with Subscription(settings, recorder(again, done)):
            await eventually(lambda: again, 30, "the unacknowledged message sent again")
            assert again == [b"second"]

        # Both were acknowledged once handled: a new connection brings nothing.
        late: list[bytes] = []
        async with Subscription(settings, recorder(late, done)):
            await publish(mosquitto, "cam2", b"third")
            await eventually(lambda: late, 30, "a new message received")
            await asyncio.sleep(1.0)  # what the session held would have come before it
        assert late == [b"third"]

    asyncio.run(scenario())
