"""Real servers for integration tests: nginx-rtmp, redis-server, mosquitto, ffmpeg publishers."""

import functools
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest

from streamguard.errors import SourceError
from streamguard.ingest.replay import publish

from ..conftest import SAMPLES
from ..support.mosquitto import Mosquitto, MosquittoUnavailable, mosquitto_broker
from ..support.nginx import STOP_TIMEOUT_S, NginxRtmp, NginxUnavailable, nginx_rtmp_server
from ..support.processes import stop
from ..support.redis import RedisServer, RedisUnavailable, redis_server

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def _server(request, started, unavailable: type[Exception], log: Callable[[Any], Path]):
    """Yield the server ``started`` gives; print its log after a failed test."""
    try:
        with started as server:
            yield server
    except unavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    path = log(server)
    if request.node.stash.get(_FAILED, False) and path.exists():
        print(f"--- {path} ---\n{path.read_text(errors='replace')[-8000:]}")


@pytest.fixture
def nginx_rtmp(request, tmp_path) -> Iterator[NginxRtmp]:
    """A fresh nginx-rtmp per test."""
    started = nginx_rtmp_server(tmp_path / "nginx")
    yield from _server(request, started, NginxUnavailable, lambda server: server.error_log)


@pytest.fixture
def redis(request, tmp_path) -> Iterator[RedisServer]:
    """A fresh redis-server per test (AOF on, so kill -9 and restart keep the data)."""
    started = redis_server(tmp_path / "redis")
    yield from _server(request, started, RedisUnavailable, lambda server: server.log)


@pytest.fixture
def mosquitto(request, tmp_path) -> Iterator[Mosquitto]:
    """A fresh mosquitto per test (persistence on, so retained messages survive a restart)."""
    started = mosquitto_broker(tmp_path / "mosquitto")
    yield from _server(request, started, MosquittoUnavailable, lambda broker: broker.log)


@contextmanager
def ffmpeg_publish(clip: Path, url: str, *, loop: bool = True) -> Iterator[subprocess.Popen]:
    """Publish ``clip`` to ``url`` in real time with the ffmpeg CLI (stream copy) until exit."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is needed: install the Debian package ffmpeg", pytrace=False)
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
    command += ["-stream_loop", "-1"] if loop else []
    command += ["-i", str(clip), "-c", "copy", "-f", "flv", url]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        stop(process, timeout_s=STOP_TIMEOUT_S)  # ffmpeg ends the FLV stream cleanly on SIGTERM


@dataclass
class Publishing:
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[SourceError] | None = None


@contextmanager
def publishing(source: Path, urls: list[str], **options) -> Iterator[Publishing]:
    """Run publish() in a thread; stop it on exit and keep its result."""
    run = Publishing()

    def target() -> None:
        run.errors = publish(source, urls, stop=run.stop, **options)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        yield run
    finally:
        run.stop.set()
        thread.join(10)
        assert not thread.is_alive(), "publish() did not stop within 10 s"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def hls_dir(tmp_path):
    """The flagged clip cut into 2 s HLS segments (stream copy)."""
    with av.open(str(SAMPLES / "clips" / "flagged_720p.mp4")) as source:
        video = source.streams.video[0]
        playlist = tmp_path / "index.m3u8"
        with av.open(
            str(playlist), "w", format="hls", options={"hls_time": "2", "hls_list_size": "0"}
        ) as output:
            stream = output.add_stream_from_template(video)
            for packet in source.demux(video):
                if packet.dts is not None:
                    packet.stream = stream
                    output.mux(packet)
    return tmp_path


@pytest.fixture
def http_base(hls_dir):
    handler = functools.partial(QuietHandler, directory=str(hls_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
