"""The look at a killed stream (ingest/liveness.py) tells a server that accepts and says
nothing (nginx-rtmp waiting for a keyframe) from one that is not there."""

import socket
import time

from streamguard.ingest.liveness import Liveness, Seen, look

SCHEMES = frozenset({"rtmp"})


def look_at(port: int) -> Seen:
    return look(
        f"rtmp://127.0.0.1:{port}/live/key",
        allowed_schemes=SCHEMES,
        open_timeout_s=1,
        read_timeout_s=1,
        hls_hold_reloads=3,
    )


def test_a_server_that_accepts_and_says_nothing_times_the_look_out():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        started = time.monotonic()
        seen = look_at(port)
    assert seen.liveness is Liveness.TIMED_OUT, seen
    assert time.monotonic() - started < 10
    assert "key" not in seen.detail  # the stream key is redacted


def test_nothing_listening_is_not_live():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    seen = look_at(port)
    assert seen.liveness is not Liveness.LIVE, seen
