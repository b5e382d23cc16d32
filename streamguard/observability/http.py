"""A small HTTP/1.1 server on the event loop for /streams, /healthz and /readyz.

GET only, one request per connection, bounded header size and read time: it
serves monitoring probes and operators, not the public internet.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("streamguard.http")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_MAX_HEADER_BYTES = 16 * 1024
_READ_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, indent=1).encode() + b"\n")


Route = Callable[[], Response]


async def serve(host: str, port: int, routes: dict[str, Route]) -> asyncio.Server:
    """Start serving ``routes`` (path -> handler); the caller closes the returned server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            route = routes.get(target.split("?", 1)[0])
            if route is None:
                response = json_response({"error": "not found"}, 404)
            elif method not in ("GET", "HEAD"):
                response = json_response({"error": "only GET"}, 405)
            else:
                response = route()
            status = f"{response.status} {_REASONS.get(response.status, '')}"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(response.body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that sends nothing, too much, or garbage just gets closed
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, limit=_MAX_HEADER_BYTES)
    log.info("HTTP on %s:%d (%s)", host, port, " ".join(sorted(routes)))
    return server
