"""MediaMTX: kick through the v3 Control API, refuse through its HTTP authentication.

Kick: list the RTMP and RTMPS connections, ``POST .../kick/{id}`` each one publishing
the path. Newer servers name these ``/v3/rtmp/conns/{list,kick/ID}`` and keep the
older ``/v3/rtmpconns/...`` as deprecated aliases; older servers have only the latter.
The form is detected by which list endpoint answers, once.
Refuse: with ``authMethod: http`` (or the older ``externalAuthenticationURL``) MediaMTX
POSTs JSON (``action``, ``path``, ``protocol``, ``user``, ``ip``, ``query``, …) for every
publish, read and API access, and allows it on any 2xx answer.
"""

from typing import Any

from streamguard.enforce.adapters.common import ApiAdapter, json_object
from streamguard.enforce.api import ApiError, MediaApi, Reply
from streamguard.enforce.targets import Target
from streamguard.infra.http import Request

KINDS = ("rtmp", "rtmps")
PAGE_SIZE = 100


class MediaMtx(ApiAdapter):
    name = "mediamtx"

    def __init__(self, api: MediaApi) -> None:
        super().__init__(api)
        self._new_form: bool | None = None  # None: not detected yet

    async def drop(self, target: Target) -> int:
        served = False
        kicked = 0
        for kind in KINDS:
            connections = await self._connections(kind)
            if connections is None:
                continue  # this protocol is disabled on the server
            served = True
            for connection in connections:
                if connection.get("state") == "publish" and connection.get("path") == target.path:
                    kicked += await self._kick(kind, str(connection.get("id")))
        if not served:
            raise ApiError("MediaMTX lists neither RTMP nor RTMPS connections (rtmp disabled?)")
        return kicked

    def publish_target(self, request: Request) -> Target | None:
        data = json_object(request.body)
        if data.get("action") != "publish":
            return None
        path = data.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("publish without a path")
        return Target(path)

    def _route(self, kind: str, new_form: bool, action: str) -> str:
        return f"/v3/{kind}/conns/{action}" if new_form else f"/v3/{kind}conns/{action}"

    async def _connections(self, kind: str) -> list[dict[str, Any]] | None:
        """Every connection of ``kind``, page by page; None when the API has no such list."""
        items: list[dict[str, Any]] = []
        page = 0
        while True:
            reply = await self._list_page(kind, page)
            if reply is None:
                return None
            data = reply.json(f"{kind} connections")
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                raise ApiError(f"{kind} connections: unexpected answer")
            items += [item for item in data["items"] if isinstance(item, dict)]
            page += 1
            if page >= int(data.get("pageCount") or 0):
                return items

    async def _list_page(self, kind: str, page: int) -> Reply | None:
        forms = (True, False) if self._new_form is None else (self._new_form,)
        query = {"page": str(page), "itemsPerPage": str(PAGE_SIZE)}
        for new_form in forms:
            path = self._route(kind, new_form, "list")
            reply = await self.api.call("GET", path, query)
            if reply.status == 200:
                self._new_form = new_form
                return reply
            if reply.status != 404:
                raise ApiError(f"GET {path}: HTTP {reply.status}")
        return None

    async def _kick(self, kind: str, connection_id: str) -> int:
        path = self._route(kind, bool(self._new_form), f"kick/{connection_id}")
        reply = await self.api.call("POST", path)
        if reply.status == 404:
            return 0  # it left between the list and the kick
        if reply.status != 200:
            raise ApiError(f"POST {path}: HTTP {reply.status}")
        return 1
