"""Calls to a media server's HTTP API (urllib in a worker thread: a few calls per kill).

Error messages name the method and path, never the query string: nginx-rtmp's
control API takes the stream key as a query parameter.
"""

import asyncio
import base64
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from streamguard.infra.redaction import redact


class ApiError(Exception):
    """The media server did not do what was asked; trying again later may work."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    def json(self, what: str) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(f"{what}: HTTP {self.status} with a body that is not JSON") from None


class MediaApi:
    def __init__(
        self, base_url: str, *, user: str = "", password: str = "", timeout_s: float = 5.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json"}
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def __str__(self) -> str:
        return redact(self.base_url)

    async def call(self, method: str, path: str, query: dict[str, str] | None = None) -> Reply:
        """``method`` ``base_url + path``; any HTTP status is a Reply, no answer is ApiError."""
        url = self.base_url + quote(path) + (f"?{urlencode(query)}" if query else "")
        request = urllib.request.Request(url, method=method, headers=self._headers)
        return await asyncio.to_thread(self._send, request, f"{method} {path}")

    def _send(self, request: urllib.request.Request, what: str) -> Reply:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Reply(response.status, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Reply(exc.code, exc.read())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"{what}: no answer from {self} ({reason})") from None
