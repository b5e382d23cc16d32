"""``streamguard enforce`` running: the publish hook, the kill subscription, the drops.

The hook starts before the subscription, so a key refused in an earlier run is
refused from the first publish on. SIGTERM and SIGINT stop it; drops still in flight
are finished by the next start. The same port serves /healthz, /readyz and /metrics.
"""

import asyncio
import logging
import signal

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamguard import lifecycle
from streamguard.config import read_secret
from streamguard.config.model import EnforceSettings
from streamguard.config.mqtt import MqttSettings
from streamguard.enforce import adapters, metrics
from streamguard.enforce.api import MediaApi
from streamguard.enforce.denylist import DenyList
from streamguard.enforce.enforcer import Enforcer
from streamguard.enforce.hook import HOOK_PATH, publish_hook
from streamguard.enforce.registry import RegistryResolver
from streamguard.enforce.targets import ConfigResolver
from streamguard.events.broker import topic
from streamguard.events.subscriber import Subscriber
from streamguard.infra import http

log = logging.getLogger("streamguard.enforce")
STOP_TIMEOUT_S = 5.0


async def run(
    settings: EnforceSettings, mqtt: MqttSettings, resolver: ConfigResolver | RegistryResolver
) -> None:
    """Enforce until SIGTERM or SIGINT: the hook first, then the kill subscription."""
    api = MediaApi(
        settings.api_url,
        user=settings.api_user,
        password=read_secret(settings.api_password_file, "API password"),
        timeout_s=settings.api_timeout_s,
    )
    secret = read_secret(settings.hook_secret_file, "hook secret")
    adapter = adapters.build(settings.adapter, api)
    denylist = DenyList(settings.state_file)
    enforcer = Enforcer(
        adapter,
        resolver,
        denylist,
        deny_for_s=settings.deny_for_s,
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=settings.retry_max_s,
    )
    subscriber = Subscriber(
        mqtt, topic(mqtt, "kill", "+"), enforcer.on_message, metrics.CONNECTED.set
    )
    try:
        server = await http.serve(
            *settings.listen_address,
            _routes(subscriber, enforcer),
            {HOOK_PATH: publish_hook(adapter, enforcer, secret)},
        )
    except http.ListenError as exc:
        denylist.close()
        raise http.ListenError(f"enforce.listen: {exc}") from None
    log.info(
        "enforcing kills on %s at %s for %d configured streams%s%s; %d keys refused",
        adapter.name,
        api,
        len(resolver),
        f" ({', '.join(resolver.unmapped)} not RTMP: cannot be ended)" if resolver.unmapped else "",
        " and the registered ones" if isinstance(resolver, RegistryResolver) else "",
        denylist.count(enforcer.clock()),
    )
    try:
        await _receive_until_stopped(subscriber, enforcer, resolver)
    finally:
        server.close()
        await server.wait_closed()
        denylist.close()
    log.info("stopped")


def _routes(subscriber: Subscriber, enforcer: Enforcer) -> dict[str, http.Route]:
    """/healthz, /readyz (ready once subscribed) and /metrics."""
    link, denylist = subscriber.link, enforcer.denylist

    def readyz() -> http.Response:
        status = {
            "ready": link.connected,
            "mqtt": "connected" if link.connected else link.last_error or "connecting",
            "adapter": enforcer.adapter.name,
            "denied_keys": denylist.count(enforcer.clock()),
            "pending_drops": enforcer.pending_drops,
        }
        return http.json_response(status, 200 if link.connected else 503)

    def metrics_page() -> http.Response:
        metrics.PENDING_DROPS.set(enforcer.pending_drops)
        metrics.DENIED_KEYS.set(denylist.count(enforcer.clock()))
        return http.Response(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)

    return {
        "/healthz": lambda: http.json_response({"ok": True}),
        "/readyz": readyz,
        "/metrics": metrics_page,
    }


async def _receive_until_stopped(
    subscriber: Subscriber, enforcer: Enforcer, resolver: ConfigResolver | RegistryResolver
) -> None:
    """Resume interrupted drops, receive kills until a signal, then stop in order: the
    subscription (and the registry copy), then the drops in flight."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    enforcer.resume()
    services = [lifecycle.start("kill subscription", subscriber, STOP_TIMEOUT_S)]
    if isinstance(resolver, RegistryResolver):
        services.append(lifecycle.start("stream registry", resolver, STOP_TIMEOUT_S))
    stopping = asyncio.create_task(stop.wait())
    receiving = services[0].task
    try:
        # The subscription only ends by itself on a settings error (bad URL, TLS files).
        await asyncio.wait((receiving, stopping), return_when=asyncio.FIRST_COMPLETED)
        if receiving.done():
            receiving.result()
    finally:
        stopping.cancel()
        await lifecycle.stop_in_order(services)
        await enforcer.close()
