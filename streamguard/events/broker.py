"""MQTT connection settings and clients, shared by ``run`` (publishing) and ``enforce``.

URLs are ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` or ``mqtts://`` for TLS. Topics
follow DESIGN.md: ``PREFIX/v1/{kill,review,status}/STREAM_ID`` and
``PREFIX/v1/control/streams/STREAM_ID``.
"""

import socket
import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from streamguard.config.mqtt import MqttSettings
from streamguard.errors import StreamguardError
from streamguard.infra.redaction import redact

TOPIC_KINDS = ("kill", "review", "status")
_PROTOCOLS = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}


class BrokerError(StreamguardError):
    """The MQTT settings cannot work: bad URL, unreadable password or certificate file."""


def client_id_base(settings: MqttSettings) -> str:
    """What this host's client ids start with: ``client_id``, else from the host name
    (every process and host needs its own, or the broker drops one for the other)."""
    return settings.client_id or f"streamguard-{socket.gethostname()}"


def topic(settings: MqttSettings, kind: str, stream_id: str) -> str:
    """``kind`` in kill, review, status. Stream ids never contain ``/``, ``+`` or ``#``."""
    return f"{settings.prefix}/v1/{kind}/{stream_id}"


def protocols(settings: MqttSettings) -> list[aiomqtt.ProtocolVersion]:
    """Versions to try, in order."""
    if settings.protocol == "auto":
        return [aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311]
    try:
        return [_PROTOCOLS[settings.protocol]]
    except KeyError:
        expected = "expected 5, 3.1.1 or auto"
        raise BrokerError(f"mqtt protocol '{settings.protocol}': {expected}") from None


def client(
    settings: MqttSettings,
    identifier: str,
    protocol: aiomqtt.ProtocolVersion,
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """A client for ``settings.url``; no I/O until it is entered."""
    parts = urlsplit(settings.url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise BrokerError(f"{redact(settings.url)}: expected mqtt://HOST[:PORT] or mqtts://")
    password = unquote(parts.password) if parts.password else None
    if settings.password_file is not None:
        password = _read(settings.password_file, "password").strip()
    tls = _tls_context(settings) if scheme == "mqtts" else None
    persistent = settings.persistent_session
    v5 = protocol == aiomqtt.ProtocolVersion.V5
    return aiomqtt.Client(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=password,
        identifier=identifier,
        protocol=protocol,
        clean_session=None if v5 else not persistent,
        # paho refuses any clean_start but its default ("first connect only") below MQTT 5
        clean_start=not persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
        properties=_session_expiry(persistent) if v5 else None,
        keepalive=settings.keepalive_s,
        timeout=settings.timeout_s,
        tls_context=tls,
        will=will,
    )


def _session_expiry(persistent: bool) -> Properties | None:
    """MQTT 5 ends a session with its connection unless told to keep it."""
    if not persistent:
        return None
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 7 * 24 * 3600
    return properties


def _tls_context(settings: MqttSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if settings.cert_file is not None:
            context.load_cert_chain(
                str(settings.cert_file), str(settings.key_file) if settings.key_file else None
            )
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"mqtt TLS files: {exc.__class__.__name__}: {exc}") from None
    return context


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BrokerError(f"{path}: cannot read {what} ({exc.strerror})") from None


def version_name(protocol: aiomqtt.ProtocolVersion) -> str:
    return "5" if protocol == aiomqtt.ProtocolVersion.V5 else "3.1.1"
