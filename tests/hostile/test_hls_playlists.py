"""Malformed and malicious HLS playlists, served over HTTP on loopback.

The canary: segments of the flagged clip stored outside the web root. Every hostile
playlist points at them by some other route than plain HTTP (a local path, file://,
FFmpeg's wrapper protocols, other network protocols); had streamguard read one, it
would have matched the flagged picture. A control playlist that fetches the same
segments over HTTP shows that it would.
"""

import base64
from pathlib import Path

import pytest

from .hls import Origin, origin
from .media import FLAGGED_720, hls_segments, media_playlist
from .processes import MEMORY_BOUND_MB, Finished, scan


def routes(canary: Path) -> dict[str, str]:
    """Playlist name -> the URI it gives for the canary segment."""
    return {
        "absolute-path": str(canary),
        "file-url": f"file://{canary}",
        "file-colon": f"file:{canary}",
        "dot-dot": f"../../../../../../../..{canary}",
        "concat": f"concat:{canary}|{canary}",
        "subfile": f"subfile,,start,0,end,0,,:{canary}",
        "crypto-file": f"crypto:file://{canary}",
        "crypto-plus-file": f"crypto+file://{canary}",
        "cache": f"cache:file:{canary}",
        "async": f"async:file:{canary}",
        "pipe": "pipe:0",
        "fd": "fd:0",
        "data": "data:video/mp2t;base64," + base64.b64encode(canary.read_bytes()).decode(),
        "rtmp": "rtmp://127.0.0.1:9/live/canary",
        "gopher": "gopher://127.0.0.1:9/canary",
        "tcp": "tcp://127.0.0.1:9",
        "udp": "udp://127.0.0.1:9",
        "hls-proto": f"hls+file://{canary}",
    }


def hostile_playlists(hls: Origin, canary: Path, segments: list[Path]) -> dict[str, str]:
    """Name -> URL of every hostile playlist."""
    urls = {
        name: hls.write(f"{name}.m3u8", media_playlist([uri]))
        for name, uri in routes(canary).items()
    }
    tags = {  # local files named in tags rather than as segments
        "key-file": f'#EXT-X-KEY:METHOD=AES-128,URI="file://{canary}"',
        "map-file": f'#EXT-X-MAP:URI="file://{canary}"',
    }
    for name, tag in tags.items():
        playlist = media_playlist(["nothing.ts"]).replace("#EXTINF", f"{tag}\n#EXTINF", 1)
        urls[name] = hls.write(f"{name}.m3u8", playlist)
    variant = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{}\n"
    urls["variant-file"] = hls.write("variant-file.m3u8", variant.format(f"file://{canary}"))
    (canary.parent / "local.m3u8").write_text(media_playlist([s.name for s in segments]))
    urls["variant-local-playlist"] = hls.write(
        "variant-local.m3u8", variant.format(canary.parent / "local.m3u8")
    )
    urls["media-self"] = hls.write("media-self.m3u8", media_playlist(["media-self.m3u8"]))
    return urls


@pytest.fixture
def canary(tmp_path) -> list[Path]:
    """The flagged clip as 2 s segments outside the web root; the third holds the flagged
    keyframe (4 s)."""
    return hls_segments(FLAGGED_720, tmp_path / "private", "canary")


def well_behaved(result: Finished) -> None:
    assert "Traceback" not in result.err, result.err
    assert all(line.startswith("streamguard: ") for line in result.err.splitlines()), result.err
    assert result.peak_mb < MEMORY_BOUND_MB


def test_playlists_cannot_reach_local_files_or_other_protocols(tmp_path, canary):
    with origin(tmp_path / "web") as hls:
        urls = hostile_playlists(hls, canary[2], canary)
        # The control: the same segment, fetched over HTTP.
        (tmp_path / "web" / "canary.ts").write_bytes(canary[2].read_bytes())
        control = hls.write("control.m3u8", media_playlist(["canary.ts"]))
        result = scan(control, *urls.values())
        requests = list(hls.requests)
    well_behaved(result)
    assert result.code == 2
    matches = [line for line in result.out.splitlines() if line.startswith("MATCH ")]
    assert matches and all(line.startswith(f"MATCH {control}@") for line in matches), matches
    errors = result.errors()
    assert len(errors) == len(urls), "\n".join(errors)
    for name, url in urls.items():
        (line,) = [line for line in errors if f"error: {url}: " in line]
        assert line.endswith(
            (
                "cannot open (Invalid data found when processing input)",
                "cannot open (Invalid argument)",
                "cannot open (Server returned 404 Not Found)",
                ": no video stream",
            )
        ), f"{name}: {line}"
    # Paths are resolved against the playlist's URL: they become requests to the origin.
    assert f"{canary[2]}" in requests and "/canary.ts" in requests
