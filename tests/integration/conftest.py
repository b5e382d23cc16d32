"""Real servers for integration tests: nginx-rtmp (RTMP in, HLS out) and ffmpeg publishers."""

import functools
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree

import av
import pytest

from streamguard.errors import SourceError
from streamguard.ingest.replay import publish

from ..conftest import SAMPLES
from .ports import free_port, wait_for_ports

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
DEBIAN_PACKAGES = "nginx libnginx-mod-rtmp"
STOP_TIMEOUT_S = 5.0

# HLS: 1 s fragments are cut at the next keyframe, so with the sample clips' 2 s GOP every
# fragment is 2 s long; the first playlist appears once the first fragment is closed.
NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
lock_file {root}/nginx.lock;
error_log {root}/error.log info;

events {{
    worker_connections 256;
}}

rtmp {{
    access_log off;
    server {{
        listen 127.0.0.1:{rtmp_port};
        application live {{
            live on;
            # Subscribers are disconnected when their publisher leaves (EOF instead of a hang).
            idle_streams off;
            # New subscribers start at a keyframe.
            wait_key on;
            hls on;
            hls_path {root}/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}

http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {root}/hls/;
            add_header Cache-Control no-cache;
        }}
        location /control {{
            rtmp_control all;
        }}
        location /stat {{
            rtmp_stat all;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class NginxRtmp:
    """A running nginx-rtmp: publish and play at ``rtmp_url(name)``, HLS at ``hls_url(name)``."""

    root: Path
    rtmp_port: int
    http_port: int
    process: subprocess.Popen

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def control_url(self) -> str:
        return f"{self.http_base}/control"

    @property
    def stat_url(self) -> str:
        return f"{self.http_base}/stat"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def rtmp_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{name}"

    def hls_url(self, name: str) -> str:
        return f"{self.http_base}/hls/{name}.m3u8"

    def published(self) -> set[str]:
        """Names of the streams that have a publisher now, from ``/stat``."""
        with urllib.request.urlopen(self.stat_url, timeout=5) as response:
            stat = ElementTree.fromstring(response.read())
        return {
            stream.findtext("name", "")
            for stream in stat.iterfind("server/application/live/stream")
            if stream.find("publishing") is not None
        }

    def wait_published(self, name: str, timeout_s: float = 5.0) -> None:
        """Wait for a publisher: with ``idle_streams off`` playing an unpublished stream is
        refused (FFmpeg reports EPERM)."""
        deadline = time.monotonic() + timeout_s
        while name not in self.published():
            assert time.monotonic() < deadline, f"nothing published '{name}' within {timeout_s} s"
            time.sleep(0.05)


def nginx_conf(root: Path, rtmp_port: int, http_port: int) -> str:
    # As root, workers would switch to "nobody" and could not write HLS into a private tmp dir;
    # as another user, nginx ignores ``user`` with a warning, so it is only written for root.
    user = "user root;" if os.geteuid() == 0 else ""
    return NGINX_CONF.format(
        module=RTMP_MODULE, user=user, root=root, rtmp_port=rtmp_port, http_port=http_port
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)  # graceful: finishes HLS fragments, closes clients
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def nginx_rtmp_server(root: Path) -> Iterator[NginxRtmp]:
    """Start nginx-rtmp with its config, logs and HLS files under ``root``; stop it on exit."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        pytest.fail(
            f"nginx-rtmp is needed: install the Debian packages {DEBIAN_PACKAGES} "
            f"(missing: {nginx if not Path(nginx).exists() else RTMP_MODULE})",
            pytrace=False,
        )
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    rtmp_port, http_port = free_port(), free_port()
    conf.write_text(nginx_conf(root, rtmp_port, http_port))
    process = subprocess.Popen(
        [nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = NginxRtmp(root, rtmp_port, http_port, process)
    try:
        try:
            wait_for_ports(server.rtmp_port, server.http_port, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            log = server.error_log.read_text() if server.error_log.exists() else "(no log)"
            pytest.fail(f"nginx-rtmp did not start: {exc}\n{log}", pytrace=False)
        yield server
    finally:
        _stop(process)


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def nginx_rtmp(request, tmp_path) -> Iterator[NginxRtmp]:
    """A fresh nginx-rtmp per test; its error log is printed if the test failed."""
    with nginx_rtmp_server(tmp_path / "nginx") as server:
        yield server
    if request.node.stash.get(_FAILED, False) and server.error_log.exists():
        print(f"--- nginx error log {server.error_log} ---\n{server.error_log.read_text()}")


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
        if process.poll() is None:
            process.terminate()  # ffmpeg ends the FLV stream cleanly on SIGTERM
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
