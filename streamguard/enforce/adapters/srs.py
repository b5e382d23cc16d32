"""SRS: kick a client through the HTTP API, refuse with the ``on_publish`` callback.

Kick: ``GET /api/v1/streams/?start=N&count=M`` lists streams with
``publish: {active, cid}``; ``DELETE /api/v1/clients/{cid}`` disconnects the publisher.
SRS answers HTTP 200 with ``{"code": 0}`` on success, another code otherwise.
Refuse: SRS POSTs JSON (``action: on_publish``, ``app``, ``stream``, ``param``, …) and
accepts the publisher only on HTTP 200 with the body ``0`` (or ``{"code": 0}``).
"""

from typing import Any

from streamguard.enforce.adapters.common import ApiAdapter, json_object
from streamguard.enforce.api import ApiError
from streamguard.enforce.targets import Target
from streamguard.infra.http import Request, Response

PAGE_SIZE = 100


class Srs(ApiAdapter):
    name = "srs"
    allow = Response(200, b"0", "text/plain")
    deny = Response(403, b"1", "text/plain")

    async def drop(self, target: Target) -> int:
        kicked = 0
        for client_id in await self._publishers(target):
            path = f"/api/v1/clients/{client_id}"
            data = (await self.api.call("DELETE", path)).json(f"DELETE {path}")
            if not isinstance(data, dict) or data.get("code") != 0:
                code = data.get("code") if isinstance(data, dict) else None
                raise ApiError(f"DELETE {path}: SRS code {code}")
            kicked += 1
        return kicked

    def publish_target(self, request: Request) -> Target | None:
        data = json_object(request.body)
        if data.get("action") != "on_publish":
            return None
        app, stream = data.get("app"), data.get("stream")
        if not isinstance(app, str) or not isinstance(stream, str) or not stream:
            raise ValueError("on_publish without app and stream")
        return Target.of(app, stream)

    async def _publishers(self, target: Target) -> list[str]:
        """Client ids publishing ``target``, from every page of the stream list (any vhost)."""
        found: list[str] = []
        start = 0
        while True:
            query = {"start": str(start), "count": str(PAGE_SIZE)}
            reply = await self.api.call("GET", "/api/v1/streams/", query)
            data = reply.json("stream list")
            if reply.status != 200 or not isinstance(data, dict) or data.get("code") != 0:
                raise ApiError(f"GET /api/v1/streams/: HTTP {reply.status}, unexpected answer")
            streams: list[Any] = data.get("streams") or []
            for stream in streams:
                publish = stream.get("publish") if isinstance(stream, dict) else None
                if (
                    isinstance(publish, dict)
                    and publish.get("active")
                    and stream.get("app") == target.app
                    and stream.get("name") == target.name
                ):
                    found.append(str(publish.get("cid")))
            if len(streams) < PAGE_SIZE:
                return found
            start += len(streams)
