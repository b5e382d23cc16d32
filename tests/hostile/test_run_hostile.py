"""`streamguard run` watching hostile live streams next to a good one.

RTMP streams come through nginx-rtmp from real publishers; hostile bytes come as HLS
from a loopback origin, which serves them exactly as written. Each hostile stream ends
up failed, reconnecting or still watched, with its reason in /streams; the good
stream's flagged frame is detected as usual, the process's memory stays bounded, and
nothing reaches the internal-error path.
"""

import threading
from pathlib import Path

from ..integration.conftest import NginxRtmp, ffmpeg_publish, publishing
from ..support.service import Service
from .hls import Live, looping_playlists, many_segments, origin
from .media import (
    BLOCKLIST,
    CLEAN_360,
    CLEAN_720,
    FLAGGED_720,
    audio_only,
    copy_packet,
    declaring_size,
    flipped,
    hls_segments,
    media_playlist,
    publish_with_clock,
    remux,
)
from .processes import MEMORY_BOUND_MB, vm_hwm_mb

SETTINGS = """
[ingest]
open_timeout_s = 4
read_timeout_s = 3
reconnect_initial_s = 0.5
reconnect_max_s = 2
hls_hold_reloads = 2

[policy]
keep_watching_after_kill = true
incident_gap_s = 5
"""


def shifted(source: Path, target: Path, offset_s: float) -> Path:
    """``source`` as MPEG-TS with ``offset_s`` added to its timestamps."""

    def transform(packet):
        moved = copy_packet(packet)
        shift = round(offset_s / packet.time_base)
        moved.pts, moved.dts = packet.pts + shift, packet.dts + shift
        return [moved]

    return remux(source, target, transform)


def hostile_hls(directory: Path) -> dict[str, tuple[str, list[str]]]:
    """Stream id -> (playlist name, segment files) for the VOD playlists."""
    clean = remux(CLEAN_720, directory / "clean.ts")
    flagged = remux(FLAGGED_720, directory / "flagged.ts")
    for seed in range(3):  # corrupted clean video must not match anything
        (directory / f"flipped{seed}.ts").write_bytes(flipped(clean.read_bytes(), 200, seed))
    data = flagged.read_bytes()
    (directory / "cut.ts").write_bytes(data[: int(len(data) * 0.6) + 7])
    declaring_size(FLAGGED_720, directory / "huge.ts", 16000, 16000)
    remux(CLEAN_360, directory / "small.ts")
    shifted(FLAGGED_720, directory / "flagged-later.ts", 10.0)
    audio_only(directory / "tone.ts")
    (directory / "empty.ts").write_bytes(b"")
    return {
        "hls-flipped": ("flipped.m3u8", ["flipped0.ts", "flipped1.ts", "flipped2.ts"]),
        # cut mid-packet, then the whole clip again from 0 s: a jump back in time
        "hls-cut": ("cut.m3u8", ["cut.ts", "flagged.ts"]),
        "hls-huge": ("huge.m3u8", ["huge.ts"]),
        "hls-grows-huge": ("grows.m3u8", ["small.ts", "huge.ts"]),
        "hls-resized": ("resized.m3u8", ["small.ts", "flagged-later.ts"]),
        "hls-audio": ("tone.m3u8", ["tone.ts"]),
        "hls-empty": ("empty.m3u8", ["empty.ts", "empty.ts"]),
    }


def test_hostile_streams_fail_alone(nginx_rtmp: NginxRtmp, tmp_path):
    web = tmp_path / "web"
    with origin(web) as hls:
        streams = {}
        for stream_id, (name, segments) in hostile_hls(web).items():
            streams[stream_id] = hls.write(name, media_playlist(segments))
        # Live: clean video at 30-36 s, then the flagged clip from 0 s (a timestamp reset).
        back = hls_segments(CLEAN_720, web, "a", offset_s=30)[:3]
        back += hls_segments(FLAGGED_720, web, "b")[:4]
        hls.live["back.m3u8"] = Live([segment.name for segment in back], end=True)
        streams["hls-back"] = hls.url("back.m3u8")
        # Playlists that only hurt FFmpeg's HLS demuxer, and the canary: the flagged
        # segments outside the web root, by absolute path.
        streams |= {f"pl-{name}": url for name, url in looping_playlists(hls).items()}
        streams["pl-many"] = many_segments(hls, 300_000)
        canary = hls_segments(FLAGGED_720, tmp_path / "private", "canary")
        canary_playlist = media_playlist([str(path) for path in canary])
        streams["pl-canary"] = hls.write("canary.m3u8", canary_playlist)
        tone = audio_only(tmp_path / "tone.flv")
        streams |= {
            name: nginx_rtmp.rtmp_url(name) for name in ("good", "audio-only", "slow-clock")
        }
        config = tmp_path / "streamguard.toml"
        config.write_text(
            f'[blocklist]\nfiles = ["{BLOCKLIST}"]\n{SETTINGS}'
            + "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{u}"\n' for i, u in streams.items())
        )
        stop_clock = threading.Event()
        clock = threading.Thread(
            target=publish_with_clock,
            args=(FLAGGED_720, nginx_rtmp.rtmp_url("slow-clock"), 0.25, stop_clock),
        )
        clock.start()
        try:
            with (
                publishing(FLAGGED_720, [nginx_rtmp.rtmp_url("good")], loop=True),
                ffmpeg_publish(tone, nginx_rtmp.rtmp_url("audio-only")),
            ):
                service = Service(["--config", str(config)], tmp_path / "run.log")
                try:
                    watch(service)
                finally:
                    code = service.stop()
        finally:
            stop_clock.set()
            clock.join()
    log = service.log()
    assert code == 0, log
    assert "Traceback" not in log, log


def detected(service: Service, stream_id: str) -> int:
    return sum(event["stream_id"] == stream_id for event in service.events)


def watch(service: Service) -> None:
    expect_events = ("good", "hls-cut", "hls-resized", "hls-back", "slow-clock")
    service.wait_for(
        lambda: (
            all(detected(service, s) for s in expect_events)
            # a publisher whose clock runs at a quarter of real time: lag grows 0.75 s per
            # second; that lag is the publisher's, never a reason to skip
            and service.streams()["slow-clock"]["frames_sampled"] >= 8
            and service.streams()["hls-flipped"]["connects"] >= 2
            and service.streams()["hls-grows-huge"]["connects"] >= 2
        ),
        timeout_s=45,
        what="detections on every stream that shows the flagged picture",
    )
    states = service.streams()
    for stream_id in ("hls-huge", "hls-grows-huge"):
        # Never hashed, and never given up on: the publisher may go back to a sane size.
        assert states[stream_id]["state"] != "failed", states[stream_id]
        assert states[stream_id]["frames_too_large"] > 0, states[stream_id]
        assert states[stream_id]["connects"] >= 2, states[stream_id]
    assert states["hls-huge"]["frames_sampled"] == 0
    assert states["hls-grows-huge"]["frames_sampled"] >= 5  # the 360p part's keyframes
    for stream_id in ("audio-only", "hls-audio"):
        assert states[stream_id]["state"] == "reconnecting", states[stream_id]
        assert states[stream_id]["last_error"].endswith(": no video stream")
    for stream_id in ("pl-loop", "pl-cycle", "pl-many", "pl-canary"):
        assert states[stream_id]["state"] == "reconnecting", states[stream_id]
        assert states[stream_id]["frames_sampled"] == 0 and not detected(service, stream_id)
    assert states["pl-loop"]["last_error"].endswith(": no video stream")
    assert states["pl-cycle"]["last_error"].endswith(": no video stream")
    assert states["pl-many"]["last_error"].endswith(": cannot open (timed out after 4 s)")
    assert states["hls-empty"]["state"] in ("reconnecting", "ended"), states["hls-empty"]
    assert states["hls-empty"]["last_error"]
    assert states["hls-flipped"]["frames_sampled"] and not detected(service, "hls-flipped")
    assert states["slow-clock"]["live_edge_skips"] == 0, states["slow-clock"]
    assert states["slow-clock"]["lag_s"] > 5, states["slow-clock"]
    assert all(state["internal_errors"] == 0 for state in states.values()), states
    assert states["good"]["state"] == "watching"
    good = next(event for event in service.events if event["stream_id"] == "good")
    assert good["latency_ms"] < 1000
    assert vm_hwm_mb(service.process.pid) < MEMORY_BOUND_MB
