"""One adapter per media server: drop a publisher through the server's API, and read
the server's publish hook request.

An adapter's ``drop`` returns how many publishers it disconnected (0 when the stream
was already gone) and raises ApiError when the server did not confirm, so the caller
retries. ``publish_target`` returns the stream a hook request asks to publish, None
for hook calls about anything else (playing, API access), and raises ValueError for
a request it cannot read.
"""

from collections.abc import Callable
from typing import Protocol

from streamguard.enforce.adapters.mediamtx import MediaMtx
from streamguard.enforce.adapters.nginx_rtmp import NginxRtmp
from streamguard.enforce.adapters.srs import Srs
from streamguard.enforce.api import MediaApi
from streamguard.enforce.targets import Target
from streamguard.infra.http import Request, Response


class Adapter(Protocol):
    name: str
    allow: Response
    deny: Response

    async def drop(self, target: Target) -> int: ...

    def publish_target(self, request: Request) -> Target | None: ...


ADAPTERS: dict[str, Callable[[MediaApi], Adapter]] = {
    "nginx-rtmp": NginxRtmp,
    "mediamtx": MediaMtx,
    "srs": Srs,
}


def build(adapter: str, api: MediaApi) -> Adapter:
    return ADAPTERS[adapter](api)
