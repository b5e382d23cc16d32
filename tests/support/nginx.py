"""Debian nginx with the RTMP module on free loopback ports: RTMP in, HLS out over HTTP.

Shared by the integration tests (the ``nginx_rtmp`` fixture) and ``bench/bench_live.py``.
"""

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .ports import free_port, wait_for_ports
from .processes import stop

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
DEBIAN_PACKAGES = "nginx libnginx-mod-rtmp"
STOP_TIMEOUT_S = 5.0
RECORD_DIR = "record"  # under the server's root, when it records

# HLS: 1 s fragments are cut at the next keyframe, so with the sample clips' 2 s GOP every
# fragment is 2 s long; the first playlist appears once the first fragment is closed.
# Connections: a publisher and a player per stream, for a few hundred streams (benchmarks).
NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
{user}
pid {root}/nginx.pid;
lock_file {root}/nginx.lock;
error_log {root}/error.log info;

events {{
    worker_connections 4096;
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
            hls {hls};
            hls_path {root}/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
            {record}{hooks}
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


class NginxUnavailable(RuntimeError):
    """nginx-rtmp is not installed, or did not start."""


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

    def recording(self, name: str) -> Path:
        """The file a server started with ``record=True`` records stream ``name`` into."""
        return self.root / RECORD_DIR / f"{name}.flv"

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

    def wait_unpublished(self, name: str, timeout_s: float = 5.0) -> None:
        """Wait for the publisher to have left: then a recording of ``name`` is closed."""
        deadline = time.monotonic() + timeout_s
        while name in self.published():
            assert time.monotonic() < deadline, f"'{name}' still published after {timeout_s} s"
            time.sleep(0.01)


def nginx_conf(
    root: Path,
    rtmp_port: int,
    http_port: int,
    *,
    hls: bool = True,
    on_publish: str = "",
    on_publish_done: str = "",
    record: Path | None = None,
) -> str:
    """``on_publish``: URL nginx-rtmp POSTs to before accepting a publisher (2xx allows);
    ``on_publish_done``: URL it POSTs to when the publisher has left; ``record``: the
    directory nginx records every published stream into, as ``NAME.flv``."""
    # As root, workers would switch to "nobody" and could not write HLS into a private tmp dir;
    # as another user, nginx ignores ``user`` with a warning, so it is only written for root.
    user = "user root;" if os.geteuid() == 0 else ""
    return NGINX_CONF.format(
        module=RTMP_MODULE,
        user=user,
        root=root,
        rtmp_port=rtmp_port,
        http_port=http_port,
        hls="on" if hls else "off",
        record=f"record all;\n            record_path {record};\n            " if record else "",
        hooks="".join(
            f'{name} "{url}";\n            '
            for name, url in (("on_publish", on_publish), ("on_publish_done", on_publish_done))
            if url
        ),
    )


@contextmanager
def nginx_rtmp_server(
    root: Path,
    *,
    hls: bool = True,
    on_publish: str = "",
    on_publish_done: str = "",
    record: bool = False,
) -> Iterator[NginxRtmp]:
    """Start nginx-rtmp with its config, logs and HLS files under ``root``; stop it on exit.

    ``hls=False`` saves nginx the MPEG-TS muxing when only RTMP is played (benchmarks).
    ``on_publish`` asks that URL before accepting a publisher (enforcement tests);
    ``on_publish_done`` tells that URL when a publisher has left (registration tests).
    ``record`` records every stream into ``root/record`` (``recording(name)``), closing
    each file when its publisher leaves (re-upload tests).
    Raises NginxUnavailable when it is not installed or does not start.
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        raise NginxUnavailable(
            f"nginx-rtmp is needed: install the Debian packages {DEBIAN_PACKAGES} "
            f"(missing: {nginx if not Path(nginx).exists() else RTMP_MODULE})"
        )
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    rtmp_port, http_port = free_port(), free_port()
    conf.write_text(
        nginx_conf(
            root,
            rtmp_port,
            http_port,
            hls=hls,
            on_publish=on_publish,
            on_publish_done=on_publish_done,
            record=root / RECORD_DIR if record else None,
        )
    )
    if record:
        (root / RECORD_DIR).mkdir(exist_ok=True)
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
            raise NginxUnavailable(f"nginx-rtmp did not start: {exc}\n{log}") from None
        yield server
    finally:
        stop(process, signal.SIGQUIT, STOP_TIMEOUT_S)  # SIGQUIT: graceful, closes clients


class RestartableNginxRtmp:
    """nginx-rtmp that a test can crash (kill -9 of the master and its workers), pause
    (SIGSTOP, a hang) and start again on the same ports: the fault-injection tests.

    nginx runs in its own process group, so the workers go down with the master as in a
    real crash (a kill -9 of the master alone leaves its workers serving).
    """

    def __init__(self, root: Path, *, hls: bool = False) -> None:
        self.root = root
        self.hls = hls
        self.rtmp_port, self.http_port = free_port(), free_port()
        self.server: NginxRtmp | None = None

    def start(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists() or not RTMP_MODULE.exists():
            raise NginxUnavailable(f"nginx-rtmp is needed: install {DEBIAN_PACKAGES}")
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "nginx.conf"
        conf.write_text(nginx_conf(self.root, self.rtmp_port, self.http_port, hls=self.hls))
        process = subprocess.Popen(
            [nginx, "-p", str(self.root), "-c", str(conf), "-e", str(self.error_log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.server = NginxRtmp(self.root, self.rtmp_port, self.http_port, process)
        try:
            wait_for_ports(self.rtmp_port, self.http_port, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            self.kill()
            log = self.error_log.read_text() if self.error_log.exists() else "(no log)"
            raise NginxUnavailable(f"nginx-rtmp did not start: {exc}\n{log}") from None

    def _signal_group(self, sig: int) -> None:
        assert self.server is not None, "nginx is not running"
        os.killpg(self.server.process.pid, sig)

    def kill(self) -> None:
        """kill -9 of every nginx process: what a crash does."""
        if self.server is not None:
            stop(self.server.process, signal.SIGKILL, group=True)
            self.server = None

    def pause(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self) -> None:
        if self.server is not None:
            self.resume()  # a stopped nginx would not handle SIGQUIT
            stop(self.server.process, signal.SIGQUIT, STOP_TIMEOUT_S, group=True)
            self.server = None

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def rtmp_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{name}"

    def published(self) -> set[str]:
        assert self.server is not None, "nginx is not running"
        return self.server.published()
