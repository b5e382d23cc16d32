"""The publish hook media servers call before accepting a publisher.

Configured on the media server as ``http://HOST:PORT/on_publish?secret=SECRET``. The
secret (``hook_secret_file``) is compared in constant time; a request without it is
refused, like a publish of a killed key. Logs name the app, never the stream key.
"""

import hmac
import logging

from streamguard.enforce import metrics
from streamguard.enforce.adapters import Adapter
from streamguard.enforce.enforcer import Enforcer
from streamguard.infra.http import PostRoute, Request, Response

log = logging.getLogger("streamguard.enforce.hook")

HOOK_PATH = "/on_publish"


def publish_hook(adapter: Adapter, enforcer: Enforcer, secret: str) -> PostRoute:
    def handle(request: Request) -> Response:
        given = request.query.get("secret", "").encode()
        if secret and not hmac.compare_digest(given, secret.encode()):
            metrics.HOOK_REJECTED.labels("bad_secret").inc()
            log.warning(
                "publish hook: refused a call from %s without the right secret", request.peer
            )
            return adapter.deny
        try:
            target = adapter.publish_target(request)
            if target is not None and not target.path.isprintable():
                raise ValueError("unprintable characters in the stream name")  # e.g. from JSON
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
            metrics.HOOK_REJECTED.labels("bad_request").inc()
            log.warning("publish hook: refused an unreadable %s call (%s)", adapter.name, exc)
            return adapter.deny
        if target is None or enforcer.may_publish(target):
            return adapter.allow
        return adapter.deny

    return handle
