"""The MQTT sink's status loop against a stand-in client (pure logic): a stream released
while another stream's status is being sent must not end delivery."""

import asyncio
from pathlib import Path

from streamguard.config.mqtt import MqttSettings
from streamguard.events.mqtt import MqttSink
from streamguard.events.outbox import Outbox


class Client:
    """Publishes nothing; while the first status is in flight, ``during`` runs."""

    def __init__(self, during) -> None:
        self.topics: list[str] = []
        self._during = during

    async def publish(self, topic: str, payload: bytes, **_: object) -> None:
        if not self.topics:
            self._during(topic)
        self.topics.append(topic)
        await asyncio.sleep(0)


def test_a_stream_released_while_another_status_is_sent_is_skipped(tmp_path: Path):
    sink = MqttSink(MqttSettings(url="mqtt://127.0.0.1:1"), Outbox(tmp_path / "o.db"), "w")
    sink.stream_status("a", {"state": "watching"})
    sink.stream_status("b", {"state": "watching"})

    def release_the_other(sending: str) -> None:
        sink.release("b" if sending.endswith("/a") else "a")
        sink.stop()

    client = Client(release_the_other)

    async def scenario() -> None:
        never = asyncio.get_running_loop().create_future()
        lost = asyncio.ensure_future(never)
        await asyncio.wait_for(sink._deliver(client, lost), 5)  # returns: stopped, all sent
        lost.cancel()

    asyncio.run(scenario())
    assert len(client.topics) == 1  # the other one was released: not sent, no KeyError
