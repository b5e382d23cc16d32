"""The MQTT sink on its own against a real mosquitto: credentials, protocol versions, outages."""

import asyncio
import logging
import time
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from streamguard.config.mqtt import MqttSettings
from streamguard.events.mqtt import MqttSink
from streamguard.events.outbox import Outbox
from streamguard.events.schema import Action, Event, FrameSeen

from ..support.certs import make_certificates
from ..support.mosquitto import mosquitto_broker
from ..support.subscriber import Subscriber, mosquitto_pub

pytestmark = pytest.mark.integration
USERS = {"streamguard": "pub-secret", "platform": "sub-secret"}
SAVES_ONLY_ON_STOP = ["persistence true", "autosave_interval 3600"]


def event(number: int) -> Event:
    """Kill events told apart by their stream time."""
    return Event(Action.KILL, "cam", "rtmp://h/live", "w", FrameSeen(number, 1e9), 1e9)


async def deliver(settings: MqttSettings, outbox: Outbox, count: int, wait_s: float) -> MqttSink:
    sink = MqttSink(settings, outbox, "bench-sink")
    task = asyncio.create_task(sink.run())
    for number in range(count):
        await sink.publish(event(number))
    deadline = time.monotonic() + wait_s
    while len(outbox) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    sink.stop()
    await asyncio.wait_for(task, 5)
    return sink


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_events_arrive_in_order_with_credentials(tmp_path, protocol):
    with mosquitto_broker(tmp_path / "broker", users=USERS) as broker:
        subscriber = Subscriber(
            broker.port, "streamguard/v1/kill/+", user="platform", password=USERS["platform"]
        )
        time.sleep(0.3)  # subscribed
        settings = MqttSettings(url=broker.url("streamguard"), protocol=protocol)
        outbox = Outbox(tmp_path / "outbox.sqlite")
        sink = asyncio.run(deliver(settings, outbox, 20, 10))
        deadline = time.monotonic() + 5
        while len(subscriber.messages) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        subscriber.close()
    assert sink.published == 20 and len(outbox) == 0
    assert [m.json()["frame"]["pts_s"] for m in subscriber.messages] == list(range(20))
    assert {m.topic for m in subscriber.messages} == {"streamguard/v1/kill/cam"}


def test_tls_with_a_private_ca_and_a_client_certificate(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    with mosquitto_broker(tmp_path / "broker", tls=certs) as broker:
        settings = MqttSettings(url=broker.url(), ca_file=certs.ca, timeout_s=2)
        with_client_cert = replace(settings, cert_file=certs.client_cert, key_file=certs.client_key)
        sink = asyncio.run(deliver(with_client_cert, Outbox(tmp_path / "a.sqlite"), 3, 10))
        assert sink.published == 3 and broker.url().startswith("mqtts://")
        refused = asyncio.run(deliver(settings, Outbox(tmp_path / "b.sqlite"), 1, 2))
    assert refused.published == 0 and not refused.link.connected and refused.link.last_error


def test_wrong_password_keeps_events_and_says_why(tmp_path, caplog):
    with mosquitto_broker(tmp_path / "broker", users=USERS) as broker:
        wrong = broker.url("streamguard").replace("pub-secret", "guess")
        outbox = Outbox(tmp_path / "outbox.sqlite")
        settings = replace(MqttSettings(url=wrong), timeout_s=2)
        sink = asyncio.run(deliver(settings, outbox, 1, 2))
    assert not sink.link.connected and len(outbox) == 1
    assert "guess" not in caplog.text and "***" in caplog.text
    assert "Not authorized" in sink.link.last_error or "password" in sink.link.last_error.lower()


def test_a_lost_broker_is_noticed_at_once_and_events_flow_after_its_restart(tmp_path):
    async def scenario(broker) -> tuple[float, float]:
        outbox = Outbox(tmp_path / "outbox.sqlite")
        sink = MqttSink(MqttSettings(url=broker.url()), outbox, "sink")
        task = asyncio.create_task(sink.run())
        await until(lambda: sink.link.connected)
        killed = time.monotonic()
        await asyncio.to_thread(broker.kill)
        await until(lambda: not sink.link.connected)  # while idle, nothing to send
        noticed_s = time.monotonic() - killed
        await asyncio.to_thread(broker.start)
        restarted = time.monotonic()
        await sink.publish(event(1))
        await until(lambda: sink.published == 1, 20)
        delivered_s = time.monotonic() - restarted
        sink.stop()
        await asyncio.wait_for(task, 5)
        return noticed_s, delivered_s

    with mosquitto_broker(tmp_path / "broker") as broker:
        noticed_s, delivered_s = asyncio.run(scenario(broker))
    assert noticed_s < 2  # not the 30 s keepalive
    assert delivered_s < 10  # the back-off is at most a few seconds here


def test_after_a_reconnect_the_recently_acknowledged_events_are_sent_again(tmp_path, caplog):
    """A broker killed before its next save lost what it acknowledged: the sink publishes
    those again, with their event ids, and only those of the window (not the older)."""
    settings = MqttSettings(resend_after_reconnect_s=5.0)

    async def scenario(broker) -> MqttSink:
        outbox = Outbox(tmp_path / "outbox.sqlite")
        sink = MqttSink(replace(settings, url=broker.url()), outbox, "sink")
        task = asyncio.create_task(sink.run())
        await sink.publish(event(0))
        await until(lambda: sink.published == 1, 10)
        await asyncio.sleep(6)  # event 0 is now older than the window
        for number in (1, 2):
            await sink.publish(event(number))
        await until(lambda: sink.published == 3, 10)
        await asyncio.to_thread(broker.kill)
        await until(lambda: not sink.link.connected)
        await asyncio.to_thread(broker.start)
        await until(lambda: sink.link.connected, 20)
        await until(lambda: "re-sent" in caplog.text, 10)
        sink.stop()
        await asyncio.wait_for(task, 5)
        return sink

    before = metric_value("streamguard_events_resent_total")
    with (
        caplog.at_level(logging.INFO, logger="streamguard.mqtt"),
        mosquitto_broker(tmp_path / "broker", persistence=SAVES_ONLY_ON_STOP) as broker,
    ):
        subscriber = Subscriber(broker.port, "streamguard/v1/kill/+", "platform")
        time.sleep(0.3)  # subscribed
        subscriber.close()  # offline: the broker only queues, and loses that with its memory
        broker.stop()  # saves the platform's session
        broker.start()
        sink = asyncio.run(scenario(broker))
        with Subscriber(broker.port, "streamguard/v1/kill/+", "platform") as subscriber:
            time.sleep(1)
    assert metric_value("streamguard_events_resent_total") - before == 2
    assert "re-sent 2 events acknowledged within 5 s" in caplog.text
    assert sink.published == 3  # copies are not counted as new deliveries
    sent = [m.json()["event_id"] for m in subscriber.messages]
    assert sent == [event(1).event_id, event(2).event_id]


def metric_value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_released_status_is_not_sent_again_after_a_reconnect(tmp_path):
    """A stream handed over to another process: its retained status is the new holder's,
    and the old holder's reconnect must not overwrite it with the last one it sent."""
    topic = "streamguard/v1/status/cam"

    async def scenario(broker) -> None:
        sink = MqttSink(MqttSettings(url=broker.url()), Outbox(tmp_path / "o.sqlite"), "old")
        task = asyncio.create_task(sink.run())
        await until(lambda: sink.link.connected)
        sink.stream_status("cam", {"holder": "old"})
        sink.stream_status("other", {"holder": "old"})
        await asyncio.sleep(0.3)  # sent
        sink.release("cam")
        await asyncio.to_thread(mosquitto_pub, broker.port, topic, '{"holder": "new"}', True)
        await asyncio.to_thread(broker.stop)  # saves the retained messages on the way out
        await until(lambda: not sink.link.connected)
        await asyncio.to_thread(broker.start)
        await until(lambda: sink.link.connected, 20)
        await asyncio.sleep(0.5)  # the statuses it still holds are sent again
        sink.stop()
        await asyncio.wait_for(task, 5)

    with mosquitto_broker(tmp_path / "broker") as broker:
        asyncio.run(scenario(broker))
        with Subscriber(broker.port, "streamguard/v1/status/+") as subscriber:
            deadline = time.monotonic() + 5
            while len(subscriber.messages) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    retained = {m.topic: m.json() for m in subscriber.messages if m.retained}
    assert retained == {topic: {"holder": "new"}, "streamguard/v1/status/other": {"holder": "old"}}


async def until(condition, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
