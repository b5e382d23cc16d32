"""The monitoring HTTP server on a real loopback socket."""

import asyncio
import json

from streamguard.infra.http import Response, json_response, serve


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def test_routes_status_codes_and_garbage():
    async def scenario():
        routes = {
            "/streams": lambda: json_response([{"stream_id": "a"}]),
            "/readyz": lambda: json_response({"ready": False}, 503),
            "/text": lambda: Response(200, b"x 1\n", "text/plain; version=0.0.4"),
        }
        server = await serve("127.0.0.1", 0, routes)
        port = server.sockets[0].getsockname()[1]
        try:
            ok = await exchange(port, b"GET /streams?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
            not_ready = await exchange(port, b"GET /readyz HTTP/1.1\r\n\r\n")
            missing = await exchange(port, b"GET /nope HTTP/1.1\r\n\r\n")
            post = await exchange(port, b"POST /streams HTTP/1.1\r\n\r\n")
            text = await exchange(port, b"GET /text HTTP/1.0\r\n\r\n")
            garbage = await exchange(port, b"\x00\x01\x02\r\n\r\n")
            oversized = await exchange(port, b"GET /streams HTTP/1.1\r\nX: " + b"a" * 20000)
            return ok, not_ready, missing, post, text, garbage, oversized
        finally:
            server.close()
            await server.wait_closed()

    ok, not_ready, missing, post, text, garbage, oversized = asyncio.run(scenario())
    head, body = ok.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Type: application/json" in head
    assert json.loads(body) == [{"stream_id": "a"}]
    assert not_ready.startswith(b"HTTP/1.1 503 ")
    assert missing.startswith(b"HTTP/1.1 404 ")
    assert post.startswith(b"HTTP/1.1 405 ")
    assert text.endswith(b"x 1\n") and b"text/plain; version=0.0.4" in text
    assert garbage == b"" or garbage.startswith(b"HTTP/1.1 404")
    assert oversized == b""


def test_binds_to_loopback_only():
    async def scenario():
        server = await serve("127.0.0.1", 0, {})
        try:
            return [s.getsockname()[0] for s in server.sockets]
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) == ["127.0.0.1"]


def test_post_routes_get_a_bounded_body():
    seen = []

    def hook(request):
        seen.append(request)
        return Response(200, b"0", "text/plain")

    async def scenario():
        server = await serve(
            "127.0.0.1", 0, {"/healthz": lambda: json_response({})}, {"/hook": hook}
        )
        port = server.sockets[0].getsockname()[1]
        try:
            body = b"app=live&name=k"
            ok = await exchange(
                port,
                b"POST /hook?secret=s&secret=t HTTP/1.0\r\nContent-Length: 15\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + body,
            )
            get = await exchange(port, b"GET /hook HTTP/1.1\r\n\r\n")
            post_get_route = await exchange(port, b"POST /healthz HTTP/1.1\r\n\r\n")
            no_length = await exchange(port, b"POST /hook HTTP/1.1\r\n\r\n")
            too_big = await exchange(port, b"POST /hook HTTP/1.1\r\nContent-Length: 70000\r\n\r\n")
            return ok, get, post_get_route, no_length, too_big
        finally:
            server.close()
            await server.wait_closed()

    ok, get, post_get_route, no_length, too_big = asyncio.run(scenario())
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"\r\n\r\n0")
    (request,) = seen
    assert (request.path, request.query, request.body) == (
        "/hook",
        {"secret": "s"},
        b"app=live&name=k",
    )
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.peer == "127.0.0.1"
    assert get.startswith(b"HTTP/1.1 405 ") and post_get_route.startswith(b"HTTP/1.1 405 ")
    assert no_length.startswith(b"HTTP/1.1 411 ") and too_big.startswith(b"HTTP/1.1 413 ")


def test_a_failing_handler_is_a_500_logged_without_the_query(caplog):
    errors = []

    def broken():
        raise ValueError("a bug")

    async def scenario():
        server = await serve("127.0.0.1", 0, {"/broken": broken}, on_error=lambda: errors.append(1))
        port = server.sockets[0].getsockname()[1]
        try:
            return await exchange(port, b"GET /broken?secret=hunter2 HTTP/1.1\r\n\r\n")
        finally:
            server.close()
            await server.wait_closed()

    reply = asyncio.run(scenario())
    assert reply.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert errors == [1]
    (record,) = [r for r in caplog.records if r.name == "streamguard.http"]
    assert record.getMessage() == "HTTP GET /broken failed" and record.exc_info
    assert "hunter2" not in caplog.text
