"""Registering streams: configuration, the MQTT control topic, media-server webhooks.

Registrations go to Redis (runtime/cluster.py), where every worker's heartbeat
finds them. Three ways in, all checked the same way and counted by source, action
and result (``streamguard_control_commands_total``):

- ``[[streams]]`` of the configuration, registered at start;
- ``PREFIX/v1/control/streams/{id}``: ``{"action": "start", "url": …, "sample": …,
  "secret": …}`` or ``{"action": "stop", "secret": …}``, through a shared
  subscription so that one run process handles each command;
- ``PREFIX/v1/control/incidents``: ``{"action": "incident", "stream": …, "seconds": …,
  "category": …, "incident_action": "kill"|"review", "label": …, "secret": …}`` opens
  an incident on a stream, ``{"action": "incident_close", "incident": ID, "secret": …}``
  closes one (docs/incidents.md);
- ``POST /control/nginx-rtmp?secret=…`` (nginx-rtmp ``on_publish`` and
  ``on_publish_done``: form fields ``call``, ``app``, ``name``) and
  ``POST /control/mediamtx?secret=…&event=ready|not_ready&path=…`` (MediaMTX
  ``runOnReady`` / ``runOnNotReady``).

A command without the shared secret is refused. Stream keys are secrets: a stream
the media server registers is named from ``control.stream_id`` (by default the app
and a digest of the key), and only that name is logged. A MediaMTX path of one
level has no app, and a nested one's name is everything after its first segment
(``_app_and_name``, docs/cluster.md).
"""

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from redis.exceptions import RedisError

from streamguard.blocklist.incidents import IncidentBook, IncidentError
from streamguard.config import STREAM_ID, ConfigError, Settings, StreamConfig, parse_stream
from streamguard.errors import SourceRefused
from streamguard.events.broker import client_id_base, topic
from streamguard.events.subscriber import Subscriber
from streamguard.infra.http import PostRoute, Request, Response, json_response
from streamguard.infra.redaction import redact
from streamguard.infra.redis import connect, describe
from streamguard.infra.registry import Registry
from streamguard.ingest.urls import check_allowed
from streamguard.lifecycle import Link
from streamguard.observability import metrics
from streamguard.runtime.incident_requests import ANSWER_TIMEOUT_S, ask_to_open, open_request

log = logging.getLogger("streamguard.control")
MAX_COMMAND_BYTES = 16 * 1024
_COMMAND_KEYS = {"action", "url", "sample", "secret"}
_INCIDENT_KEYS = {"action", "stream", "seconds", "category", "incident_action", "label"}
_INCIDENT_KEYS |= {"incident", "secret"}
_INCIDENT_ACTIONS = ("incident", "incident_close")
_ID_SEPARATORS = "-._"


# The field each media server's hook names its event in, and the events that register
# (start) and unregister (stop) a stream.
_HOOK_ACTIONS = {
    "nginx-rtmp": ("call", {"publish": "start", "publish_done": "stop"}),
    "MediaMTX": ("event", {"ready": "start", "not_ready": "stop"}),
}


class Refused(Exception):
    """A command that is not carried out; the message says why (never the secret)."""

    def __init__(self, reason: str, result: str = "invalid") -> None:
        super().__init__(reason)
        self.result = result  # invalid | unauthorized


@dataclass(frozen=True, slots=True)
class Command:
    action: str  # start | stop
    stream: StreamConfig  # for stop, only the id counts


class ControlPlane:
    """Runs in the process that serves HTTP; needs ``[cluster]`` (Redis)."""

    def __init__(self, settings: Settings, secret: str) -> None:
        self.settings = settings
        self._secret = secret.encode()
        self._redis = connect(settings.redis)
        self.registry = Registry(self._redis, settings.redis.prefix)
        self._allowed = frozenset(settings.ingest.allowed_schemes)

    # -- commands, whatever their source ---------------------------------------------

    def check_secret(self, given: str) -> None:
        given_bytes = given.encode(errors="surrogatepass")  # JSON can carry lone surrogates
        if not self._secret or not hmac.compare_digest(given_bytes, self._secret):
            raise Refused("wrong or missing secret", "unauthorized")

    def command(self, stream_id: str, action: str, url: str = "", sample: Any = None) -> Command:
        """A validated command; raises Refused."""
        if action not in ("start", "stop"):
            raise Refused(f"action {action!r}: expected 'start' or 'stop'")
        if action == "stop":
            url = "-"  # not used; parse_stream still checks the id
        try:
            stream = parse_stream("command", stream_id, url, sample)
            if not stream.url.isprintable():  # control characters, lone surrogates (from JSON)
                raise Refused(f"stream '{stream.id}': url has unprintable characters")
            if action == "start":  # its refusal shows the URL: printable only
                check_allowed(stream.url, self._allowed)
        except (ConfigError, SourceRefused) as exc:
            raise Refused(str(exc).removeprefix("command: ")) from None
        return Command(action, stream)

    async def apply(self, command: Command, source: str) -> str:
        """Carry out ``command``; the outcome word. Redis errors propagate."""
        stream = command.stream
        if command.action == "start":
            outcome = await self.registry.register(stream, source)
            log.info(
                "control: stream '%s' %s by %s (%s)",
                stream.id,
                "registered" if outcome == "added" else outcome,
                source,
                redact(stream.url),
            )
        else:
            outcome = "removed" if await self.registry.unregister(stream.id) else "not registered"
            log.info("control: stream '%s' %s by %s", stream.id, outcome, source)
        return outcome

    async def handle(self, source: str, action: str, build: Callable[[], Command]) -> Response:
        """Build (may raise Refused), apply, count, answer: one path for every source."""
        try:
            command = build()
        except Refused as exc:
            metrics.CONTROL_COMMANDS.labels(source, action, exc.result).inc()
            log.warning("control: %s command refused: %s", source, exc)
            return json_response({"error": str(exc)}, 403 if exc.result == "unauthorized" else 400)
        try:
            outcome = await self.apply(command, source)
        except RedisError as exc:
            metrics.CONTROL_COMMANDS.labels(source, command.action, "failed").inc()
            error = describe(exc, self.settings.redis.url)
            log.error("control: stream '%s' not %sed: %s", command.stream.id, command.action, error)
            return json_response({"error": f"registry unavailable: {error}"}, 503)
        metrics.CONTROL_COMMANDS.labels(source, command.action, "ok").inc()
        return json_response({"stream_id": command.stream.id, "outcome": outcome})

    # -- sources ---------------------------------------------------------------------

    async def register_configured(self, streams: tuple[StreamConfig, ...]) -> None:
        """Register the configured streams, retrying until Redis takes them."""
        link = Link(log)
        while True:
            try:
                for stream in streams:
                    await self.apply(Command("start", stream), "config")
                    metrics.CONTROL_COMMANDS.labels("config", "start", "ok").inc()
                return
            except RedisError as exc:
                error = describe(exc, self.settings.redis.url)
                message = "control: configured streams not registered yet: %s; retrying"
                link.down(error, message, error)
                await link.retry_after_backoff()

    async def on_message(self, stream_id: str, payload: bytes) -> None:
        """A message on the control topic."""

        def build() -> Command:
            data = self._checked_object(payload, f"stream {stream_id!r}", _COMMAND_KEYS)
            url = data.get("url", "")
            if data.get("action") == "start" and not isinstance(url, str):
                raise Refused(f"stream {stream_id!r}: url must be a string")
            return self.command(stream_id, str(data.get("action")), url, data.get("sample"))

        await self.handle("mqtt", _action_of(payload), build)

    def _checked_object(self, payload: bytes, where: str, keys: set[str]) -> dict[str, Any]:
        """A command's JSON object of known ``keys`` with the right secret; raises Refused."""
        if len(payload) > MAX_COMMAND_BYTES:
            raise Refused(f"{where}: command larger than {MAX_COMMAND_BYTES} B")
        try:
            data = json.loads(payload)
        except ValueError as exc:  # also UnicodeDecodeError, a number of 4300+ digits
            raise Refused(f"{where}: command is not JSON ({exc})") from None
        except RecursionError:
            raise Refused(f"{where}: command is not JSON (too deep)") from None
        if not isinstance(data, dict):
            raise Refused(f"{where}: command must be a JSON object")
        if unknown := set(data) - keys:
            names = ", ".join(map(repr, sorted(unknown)))  # JSON keys may hold line breaks
            raise Refused(f"{where}: unknown key(s) {names}")
        secret = data.get("secret")
        self.check_secret(secret if isinstance(secret, str) else "")
        return data

    async def on_incident(self, _: str, payload: bytes) -> None:
        """A message on the incident control topic: open or close an incident. Refused
        and failed commands are one log line each, counted as the stream commands are."""
        action = _action_of(payload, _INCIDENT_ACTIONS)
        try:
            data = self._checked_object(payload, "incident command", _INCIDENT_KEYS)
            if action == "unknown":
                raise Refused(f"incident command: action must be one of {_INCIDENT_ACTIONS}")
            outcome = await self._incident(action, data)
        except Refused as exc:
            metrics.CONTROL_COMMANDS.labels("mqtt", action, exc.result).inc()
            log.warning("control: mqtt incident command refused: %s", exc)
            return
        except (IncidentError, RedisError) as exc:
            metrics.CONTROL_COMMANDS.labels("mqtt", action, "failed").inc()
            if action == "incident_close":
                metrics.INCIDENTS.labels("close", "failed").inc()
            error = describe(exc, self.settings.redis.url) if isinstance(exc, RedisError) else exc
            log.error("control: mqtt %s command failed: %s", action, error)
            return
        metrics.CONTROL_COMMANDS.labels("mqtt", action, "ok").inc()
        log.info("control: %s by mqtt", outcome)

    async def _incident(self, action: str, data: dict[str, Any]) -> str:
        """Carry out a checked incident command; what was done, for the log."""
        prefix = self.settings.redis.prefix
        if action == "incident_close":
            incident_id = data.get("incident")
            if not isinstance(incident_id, str) or not STREAM_ID.match(incident_id):
                raise Refused("incident command: 'incident' must be an incident id")
            closed = await IncidentBook(self._redis, prefix).close(incident_id, time.time())
            metrics.INCIDENTS.labels("close", "closed").inc()
            return f"incident {closed.id} closed"
        fields = {key: value for key, value in data.items() if key not in ("action", "secret")}
        if "incident_action" in fields:
            fields["action"] = fields.pop("incident_action")
        try:
            request = open_request(fields, source="mqtt")
        except ValueError as exc:
            raise Refused(f"incident command: {exc}") from None
        poll_s = min(1.0, self.settings.redis.timeout_s / 2)
        answer = await ask_to_open(self._redis, prefix, request, ANSWER_TIMEOUT_S, poll_s)
        return f"incident {answer.incident} opened on stream {request.stream}"

    def subscriber(self) -> Subscriber:
        """The control topic, shared between every run process of the deployment."""
        mqtt = self.settings.mqtt
        shared = f"$share/{mqtt.prefix}-control/{topic(mqtt, 'control/streams', '+')}"
        identifier = f"{client_id_base(mqtt)}-control"
        return Subscriber(replace(mqtt, client_id=identifier), shared, self.on_message)

    def incident_subscriber(self) -> Subscriber:
        """The incident control topic, shared as the stream control topic is."""
        mqtt = self.settings.mqtt
        shared = f"$share/{mqtt.prefix}-control/{topic(mqtt, 'control', 'incidents')}"
        identifier = f"{client_id_base(mqtt)}-control-incidents"
        return Subscriber(replace(mqtt, client_id=identifier), shared, self.on_incident)

    def webhooks(self) -> dict[str, PostRoute]:
        return {"/control/nginx-rtmp": self._nginx_rtmp, "/control/mediamtx": self._mediamtx}

    async def _nginx_rtmp(self, request: Request) -> Response:
        form = _form(request)
        where = (form.get("app", ""), form.get("name", ""))
        return await self._webhook(request, "nginx-rtmp", form, where)

    async def _mediamtx(self, request: Request) -> Response:
        fields = {**request.query, **_form(request)}
        return await self._webhook(
            request, "MediaMTX", fields, _app_and_name(fields.get("path", ""))
        )

    async def _webhook(
        self, request: Request, server: str, fields: dict[str, str], where: tuple[str, str]
    ) -> Response:
        """A media server's publish hook: ``where`` is the stream's app and name."""
        key, actions = _HOOK_ACTIONS[server]
        value = fields.get(key, "")
        action = actions.get(value, "unknown")

        def build() -> Command:
            self.check_secret(request.query.get("secret", ""))
            if action == "unknown":
                raise Refused(f"{server} {key} {value!r}: expected {' or '.join(actions)}")
            return self._published(action, *where)

        return await self.handle("webhook", action, build)

    def _published(self, action: str, app: str, name: str) -> Command:
        """A command for a stream the media server reports, named by the templates."""
        if not name:
            raise Refused("the media server did not say which stream (no name or path)")
        path = f"{app}/{name}" if app else name
        if not path.isprintable():  # control characters, lone surrogates (from JSON)
            raise Refused("the stream's app or name has unprintable characters")
        values = {
            "app": app,
            "name": name,
            "path": path,
            "name_digest": hashlib.sha256(name.encode()).hexdigest()[:16],
        }
        control = self.settings.control
        try:
            # an empty {app} (a one-level MediaMTX path) must not leave the id starting
            # with its separator; a valid id starts with a letter or digit, so never changes
            stream_id = control.stream_id.format(**values).lstrip(_ID_SEPARATORS)
            url = control.pull_url.format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise Refused(f"control.stream_id or control.pull_url: bad template ({exc})") from None
        return self.command(stream_id, action, url)

    async def close(self) -> None:
        await self._redis.aclose()


def _app_and_name(path: str) -> tuple[str, str]:
    """A MediaMTX path as nginx-rtmp's app and name: the first segment is the app and
    the rest the name (``live/sub/cam1`` -> ``live``, ``sub/cam1``); a one-level path is
    all name (``cam1`` -> ``''``, ``cam1``). ``{path}`` is the path again either way."""
    first, _, rest = path.strip("/").partition("/")
    return (first, rest) if rest else ("", first)


def _form(request: Request) -> dict[str, str]:
    """An url-encoded body (what nginx-rtmp sends), or a JSON object (MediaMTX hooks)."""
    body = request.body.decode("utf-8", "replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(reversed(parse_qsl(body)))


def _action_of(payload: bytes, known: tuple[str, ...] = ("start", "stop")) -> str:
    """The action a command names, for counting even a malformed one."""
    try:
        action = json.loads(payload).get("action")
    except (ValueError, AttributeError, RecursionError):
        return "unknown"
    return action if action in known else "unknown"
