"""The broker's retained stream states (``PREFIX/v1/status/STREAM_ID``, events/mqtt.py),
read once for ``streamguard audit``.

A broker sends every retained message of a subscription right after acknowledging it,
so reading stops once none has come for ``QUIET_S``, or at ``wait_s`` whatever comes.
The session is clean (nothing is left at the broker) and MQTT 3.1.1, which every broker
speaks; the client id is this host's base id with ``-audit-PID``.
"""

import asyncio
import json
import os
from dataclasses import replace

import aiomqtt

from streamguard.config.mqtt import MqttSettings
from streamguard.events.audit import AuditInputError, Retained
from streamguard.events.broker import client, client_id_base, topic
from streamguard.infra.redaction import redact

QUIET_S = 1.0


def read_retained(settings: MqttSettings, wait_s: float) -> list[Retained]:
    """The retained state of every stream at the broker ``settings.url``."""
    try:
        return asyncio.run(asyncio.wait_for(_read(settings, wait_s), wait_s + settings.timeout_s))
    except (aiomqtt.MqttError, TimeoutError) as exc:
        problem = str(exc) or "no answer"
        raise AuditInputError(
            f"{redact(settings.url)}: cannot read stream states ({problem})"
        ) from None


async def _read(settings: MqttSettings, wait_s: float) -> list[Retained]:
    settings = replace(settings, persistent_session=False)
    identifier = f"{client_id_base(settings)}-audit-{os.getpid()}"
    states: dict[str, Retained | None] = {}
    async with client(settings, identifier, aiomqtt.ProtocolVersion.V311) as mqtt:
        await mqtt.subscribe(topic(settings, "status", "+"), qos=1)
        messages = aiter(mqtt.messages)
        deadline = asyncio.get_running_loop().time() + wait_s
        while (left_s := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await asyncio.wait_for(anext(messages), min(QUIET_S, left_s))
            except TimeoutError:
                break
            stream_id = message.topic.value.rpartition("/")[2]
            payload = message.payload
            data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            states[stream_id] = _state(settings, stream_id, data)
    return [state for state in states.values() if state is not None]


def _state(settings: MqttSettings, stream_id: str, payload: bytes) -> Retained | None:
    """The status a retained message holds; None for an empty one (the stream was removed)."""
    if not payload:
        return None
    try:
        body = json.loads(payload)
        state, since = body["state"], body.get("since")
        if not isinstance(state, str) or not isinstance(since, int | float | None):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        where = topic(settings, "status", stream_id)
        raise AuditInputError(f"{redact(settings.url)}: {where}: not a stream status") from None
    return Retained(stream_id, state, since)
