"""What the adapters share: the API they call, the default hook answers, and reading
the JSON publish hooks (MediaMTX, SRS)."""

import json
from typing import Any

from streamguard.enforce.api import MediaApi
from streamguard.infra.http import Response


class ApiAdapter:
    """An adapter over a media server's HTTP API; the hook's answers are empty bodies
    with the status alone unless the server wants more."""

    allow = Response(200, b"", "text/plain")
    deny = Response(403, b"", "text/plain")

    def __init__(self, api: MediaApi) -> None:
        self.api = api


def json_object(body: bytes) -> dict[str, Any]:
    """The hook request's JSON object; ValueError for anything else."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("body is not a JSON object")
    return data
