"""A small HTTP/1.1 server on the event loop for /streams, /healthz and /readyz.

GET routes, and optionally POST routes with a small body (the publish hooks media
servers call, see streamguard/enforce/hook.py). One request per connection, bounded
header and body size and read time: it serves monitoring probes, operators and local
media servers, not the public internet.
"""

import asyncio
import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from streamguard.errors import StreamguardError

log = logging.getLogger("streamguard.http")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_HEADER_BYTES = 16 * 1024
_MAX_BODY_BYTES = 64 * 1024
_READ_TIMEOUT_S = 5.0


class ListenError(StreamguardError):
    """The server cannot listen on its address."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, indent=1).encode() + b"\n")


@dataclass(frozen=True, slots=True)
class Request:
    """A POST request: the first value of each query parameter, lower-case header names."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: str


Route = Callable[[], Response]
PostRoute = Callable[[Request], Response | Awaitable[Response]]


async def serve(
    host: str,
    port: int,
    routes: dict[str, Route],
    post_routes: dict[str, PostRoute] | None = None,
    on_error: Callable[[], None] = lambda: None,
) -> asyncio.Server:
    """Start serving ``routes`` (GET, path -> handler) and ``post_routes`` (POST);
    the caller closes the returned server (ListenError: cannot listen on that address).
    A handler that raises is a bug: the client
    gets a 500, the log the traceback, and ``on_error`` is called to count it."""
    router = _Router(routes, post_routes or {}, on_error)
    try:
        server = await asyncio.start_server(router.handle, host, port, limit=_MAX_HEADER_BYTES)
    except OSError as exc:  # in use, or not an address of this host
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio words it long
        raise ListenError(f"cannot listen on {host}:{port} ({reason})") from None
    log.info("HTTP on %s:%d (%s)", host, port, " ".join(sorted({*routes, *router.post_routes})))
    return server


@dataclass(frozen=True, slots=True)
class _Exchange:
    """One connection's request, as far as its head, and the stream its body follows on."""

    method: str
    target: str
    head: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass(frozen=True, slots=True)
class _Router:
    """One server's routes, and the one request each connection to it may make."""

    routes: dict[str, Route]
    post_routes: dict[str, PostRoute]
    on_error: Callable[[], None]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the request, write the response, close the connection."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            response = await self._answer(_Exchange(method, target, head, reader, writer))
            status = f"{response.status} {_REASONS.get(response.status, '')}"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(response.body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that sends nothing, too much, or no request line just gets closed
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, exchange: _Exchange) -> Response:
        """The route's response; a 500 if the handler raised (a bug, logged and counted)."""
        try:
            return await self._respond(exchange)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            raise  # the client's fault: a short or slow body
        except Exception:
            # the path only: query strings carry secrets
            path = exchange.target.partition("?")[0][:200]
            log.exception("HTTP %s %s failed", exchange.method, path)
            self.on_error()
            return json_response({"error": "internal error"}, 500)

    async def _respond(self, exchange: _Exchange) -> Response:
        method = exchange.method
        path, _, query = exchange.target.partition("?")
        if path in self.post_routes:
            if method != "POST":
                return json_response({"error": "only POST"}, 405)
            return await self._post(path, query, exchange)
        route = self.routes.get(path)
        if route is None:
            return json_response({"error": "not found"}, 404)
        if method not in ("GET", "HEAD"):
            return json_response({"error": "only GET"}, 405)
        return route()

    async def _post(self, path: str, query: str, exchange: _Exchange) -> Response:
        """A POST route's response, once its bounded body is read."""
        headers = _headers(exchange.head)
        length = headers.get("content-length", "")
        if not (length.isascii() and length.isdigit()):
            return json_response({"error": "Content-Length required"}, 411)
        if int(length) > _MAX_BODY_BYTES:
            return json_response({"error": "body too large"}, 413)
        body = await asyncio.wait_for(exchange.reader.readexactly(int(length)), _READ_TIMEOUT_S)
        peer = exchange.writer.get_extra_info("peername")
        request = Request(
            path, dict(reversed(parse_qsl(query))), headers, body, str(peer and peer[0])
        )
        response = self.post_routes[path](request)
        return await response if inspect.isawaitable(response) else response


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}
