"""Random bytes and malformed requests against the HTTP server `run` and `enforce` use
(streamguard/observability/http.py), listening on 127.0.0.1 with the control webhooks
behind it. Every request gets an HTTP answer or a closed connection, and the server
answers the next well-formed request."""

import asyncio
import json
import socket
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamguard.config import ClusterSettings, ControlSettings, Settings
from streamguard.infra.http import Response, serve
from streamguard.infra.redis import RedisSettings
from streamguard.runtime.control import ControlPlane

from ..support.redis import RedisServer

SECRET = "s3cret"
STATUSES = {b"200", b"400", b"403", b"404", b"405", b"411", b"413", b"503"}


@pytest.fixture
def port(redis: RedisServer):
    """serve() on its own event loop thread, as in `run`: /healthz and the webhooks."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)

    plane = ControlPlane(
        Settings(
            redis=RedisSettings(url=redis.url),
            cluster=ClusterSettings(enabled=True),
            control=ControlSettings(pull_url="rtmp://media:1935/{app}/{name}"),
        ),
        SECRET,
    )
    routes = {"/healthz": lambda: Response(200, b"ok\n", "text/plain")}
    server = run(serve("127.0.0.1", 0, routes, plane.webhooks()))
    yield server.sockets[0].getsockname()[1]

    async def close() -> None:  # on the server's own loop: asyncio's Server is not thread-safe
        server.close()
        await server.wait_closed()

    run(close())
    run(plane.close())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, close our side, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        try:
            connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close first (a head too large)
            pass
        reply = b""
        try:
            while chunk := connection.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    return reply


lengths = st.sampled_from(["0", "5", "-1", "²", " 7", "7 ", "1e3", "9" * 5000, "70000", ""])
header_lines = st.lists(
    st.tuples(
        st.sampled_from(["Content-Length", "content-type", "Host", "X"]) | st.text(max_size=10),
        lengths | st.sampled_from(["application/json", "text/plain"]) | st.text(max_size=20),
    ),
    max_size=5,
)
targets = st.sampled_from(
    [
        "/healthz",
        "/control/nginx-rtmp",
        f"/control/nginx-rtmp?secret={SECRET}",
        f"/control/mediamtx?secret={SECRET}&event=ready&path=live/%ff%00",
        "/control/mediamtx?secret=%ZZ&event",
        "*",
        "",
        "/" + "a" * 3000,
    ]
) | st.text(max_size=30)
bodies = st.binary(max_size=300) | st.sampled_from(
    [
        b"call=publish&app=live&name=k",
        json.dumps({"event": "ready", "path": "live/\ud800"}).encode(),
        b"[" * 3000,
    ]
)


@st.composite
def requests(draw) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "", "P\x00ST"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "", "HTTP/9"]))
    head = f"{method} {draw(targets)} {version}\r\n"
    for name, value in draw(header_lines):
        head += f"{name}: {value}\r\n"
    separator = draw(st.sampled_from(["\r\n", "\n", ""]))
    return (head + separator).encode("utf-8", "surrogatepass") + draw(bodies)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=requests() | st.binary(max_size=1000))
@example(data=b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\n\r\n")  # head past 16 KiB
@example(data=b"POST /control/nginx-rtmp HTTP/1.1\r\nContent-Length: 70000\r\n\r\n")
@example(data=b"POST /control/nginx-rtmp HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n")
@example(data=b"POST /control/nginx-rtmp HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort")
@example(data=b"\r\n\r\n")
@example(
    data=b"POST /control/mediamtx?secret=s3cret HTTP/1.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 6000\r\n\r\n" + b"[" * 3000 + b"]" * 3000
)
def test_server_survives_any_request(port, caplog, data):
    reply = exchange(port, data)
    if reply:
        assert reply.startswith(b"HTTP/1.1 ") and reply[9:12] in STATUSES, reply[:200]
    assert exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")
    # A handler's exception would end its connection and be logged by asyncio.
    assert not [record for record in caplog.records if record.name == "asyncio"]
