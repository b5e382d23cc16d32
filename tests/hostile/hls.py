"""An HLS origin on loopback that serves whatever playlists a test writes, hostile ones
included, and live playlists that grow in real time."""

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .media import media_playlist

SEGMENT_S = 2.0


@dataclass
class Live:
    """A live media playlist: segment i is published ``SEGMENT_S`` after segment i - 1;
    the first ``window`` are published at once. The playlist lists the last ``window``
    published segments, and ends (ENDLIST) once all are published if ``end``."""

    segments: list[str]
    window: int = 3
    end: bool = False
    started: float | None = None

    def playlist(self, now: float) -> str:
        if self.started is None:
            self.started = now
        published = min(len(self.segments), self.window + int((now - self.started) / SEGMENT_S))
        first = max(0, published - self.window)
        done = published == len(self.segments) and self.end
        return media_playlist(self.segments[first:published], end=done, sequence=first)


class Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.live: dict[str, Live] = {}
        self.requests: list[str] = []
        handler = functools.partial(_Handler, directory=str(directory))
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def write(self, name: str, text: str) -> str:
        """Serve ``text`` at /``name``; returns its URL."""
        (self.directory / name).write_text(text)
        return self.url(name)


class _Handler(SimpleHTTPRequestHandler):
    server: Origin

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        live = self.server.live.get(self.path.lstrip("/").partition("?")[0])
        if live is None:
            super().do_GET()
            return
        body = live.playlist(time.monotonic()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.apple.mpegurl")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


@contextmanager
def origin(directory: Path) -> Iterator[Origin]:
    directory.mkdir(parents=True, exist_ok=True)
    server = Origin(directory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def looping_playlists(hls: Origin) -> dict[str, str]:
    """Master playlists that name themselves or each other as variants. FFmpeg's HLS
    demuxer parses every variant it finds, including those of variants, so these make
    it fetch playlists in a loop until the open times out."""
    variant = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{}\n"
    hls.write("cycle-b.m3u8", variant.format("cycle-a.m3u8"))
    return {
        "loop": hls.write("loop.m3u8", variant.format("loop.m3u8")),
        "cycle": hls.write("cycle-a.m3u8", variant.format("cycle-b.m3u8")),
    }


def many_segments(hls: Origin, count: int) -> str:
    """A VOD playlist of ``count`` segments that do not exist (27 B per entry)."""
    return hls.write("many.m3u8", media_playlist([f"missing{n}.ts" for n in range(count)]))
