"""nginx-rtmp: drop with the control module, refuse with ``on_publish``.

Drop: ``GET {control}/drop/publisher?app=APP&name=NAME`` answers 200 with the number
of dropped publishers, or 400 "Live stream not found" when nobody publishes the name.
Refuse: nginx-rtmp POSTs a form (``app``, ``name``, ``call=publish``, ``addr``,
``clientid``, … then the publisher's own query arguments) and accepts the publisher
on any 2xx answer.
"""

from urllib.parse import parse_qs

from streamguard.enforce.adapters.common import ApiAdapter
from streamguard.enforce.api import ApiError
from streamguard.enforce.targets import Target
from streamguard.infra.http import Request

_NOT_FOUND = b"Live stream not found"


class NginxRtmp(ApiAdapter):
    name = "nginx-rtmp"

    async def drop(self, target: Target) -> int:
        query = {"app": target.app, "name": target.name}
        reply = await self.api.call("GET", "/drop/publisher", query)
        if reply.status == 400 and reply.body.strip() == _NOT_FOUND:
            return 0
        if reply.status != 200 or not reply.body.strip().isdigit():
            raise ApiError(f"GET /drop/publisher: HTTP {reply.status} {reply.body[:80]!r}")
        return int(reply.body)

    def publish_target(self, request: Request) -> Target | None:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        # nginx-rtmp writes its own fields first and appends the publisher's query
        # arguments, so only the first value of a field is trusted.
        first = {field: values[0] for field, values in form.items()}
        if first.get("call") != "publish":
            return None
        if not first.get("app") or not first.get("name"):
            raise ValueError("call=publish without app and name")
        return Target.of(first["app"], first["name"])
