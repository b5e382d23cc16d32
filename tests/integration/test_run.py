"""`streamguard run` against real nginx-rtmp streams, watched from outside like a platform would."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from ..conftest import SAMPLES
from ..support.ports import free_port
from ..support.service import Service
from .conftest import NginxRtmp, ffmpeg_publish, publishing

BLOCKLIST = SAMPLES / "blocklist.csv"
FLAGGED_720 = SAMPLES / "clips" / "flagged_720p.mp4"
FLAGGED_360 = SAMPLES / "clips" / "flagged_360p.flv"
CLEAN = SAMPLES / "clips" / "clean_720p.mp4"

FAST_RETRIES = """
[ingest]
open_timeout_s = 4
read_timeout_s = 2
reconnect_initial_s = 0.5
reconnect_max_s = 2
"""


# These tests watch ingest across loops of the sample clips, whose flagged picture comes
# every 10 s: keep watching after a kill, and make each appearance its own incident.
EVERY_LOOP = """
[policy]
keep_watching_after_kill = true
incident_gap_s = 5
"""


def config_file(
    tmp_path: Path, streams: dict[str, str], extra: str = FAST_RETRIES + EVERY_LOOP
) -> Path:
    path = tmp_path / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{url}"\n' for i, url in streams.items())
    path.write_text(f'[blocklist]\nfiles = ["{BLOCKLIST}"]\n{extra}{tables}')
    return path


def corrupted_copy(source: Path, target: Path) -> Path:
    """The clip with the payload of every video packet scrambled after its first bytes."""
    rng = np.random.default_rng(7)
    with av.open(str(source)) as reader, av.open(str(target), "w", format="flv") as writer:
        video = reader.streams.video[0]
        out = writer.add_stream_from_template(video)
        for packet in reader.demux(video):
            if packet.dts is None:
                continue
            data = bytearray(bytes(packet))
            noise = rng.integers(0, 256, len(data) - 16, dtype=np.uint8).tobytes()
            data[16:] = noise
            scrambled = av.Packet(bytes(data))
            scrambled.pts, scrambled.dts, scrambled.time_base = (
                packet.pts,
                packet.dts,
                packet.time_base,
            )
            scrambled.is_keyframe = packet.is_keyframe
            scrambled.stream = out
            writer.mux(scrambled)
    return target


def events_for(service: Service, stream_id: str) -> list[dict]:
    return [event for event in service.events if event["stream_id"] == stream_id]


def test_detects_on_rtmp_and_hls_and_survives_bad_neighbours(nginx_rtmp: NginxRtmp, tmp_path):
    corrupt = corrupted_copy(FLAGGED_360, tmp_path / "corrupt.flv")
    streams = {
        "rtmp-flagged": nginx_rtmp.rtmp_url("flagged"),
        "hls-flagged": nginx_rtmp.hls_url("flagged360"),
        "clean": nginx_rtmp.rtmp_url("clean"),
        "corrupt": nginx_rtmp.rtmp_url("corrupt"),
        "dead": f"rtmp://127.0.0.1:{free_port()}/live/gone",
    }
    with (
        publishing(FLAGGED_720, [nginx_rtmp.rtmp_url("flagged")], loop=True) as replay,
        ffmpeg_publish(FLAGGED_360, nginx_rtmp.rtmp_url("flagged360")),
        ffmpeg_publish(CLEAN, nginx_rtmp.rtmp_url("clean")),
        ffmpeg_publish(corrupt, nginx_rtmp.rtmp_url("corrupt")),
    ):
        service = Service(["--config", str(config_file(tmp_path, streams))], tmp_path / "run.log")
        try:
            service.wait_for(
                lambda: events_for(service, "rtmp-flagged") and events_for(service, "hls-flagged"),
                timeout_s=30,
                what="a detection on both the RTMP and the HLS stream",
            )
            (event,) = events_for(service, "rtmp-flagged")[:1]
            assert event["match"]["category"] == "test" and event["match"]["algo"] == "pdq"
            assert event["stream_url"] == nginx_rtmp.rtmp_url("***")  # stream key redacted
            assert event["latency_ms"] < 1000
            # the flagged picture's first frame (a scene cut, 3.5 s) or its keyframe (4 s)
            assert 3.5 - 0.1 <= event["frame"]["pts_s"] % 10 <= 4.0 + 0.1
            # flagged_360p: PDQ d=2 and pHash d=0; the one-frame kill rests on PDQ alone
            (event,) = events_for(service, "hls-flagged")[:1]
            assert event["action"] == "kill" and event["match"]["algo"] == "pdq"

            states = service.streams()
            assert states["clean"]["state"] == "watching" and states["clean"]["frames_sampled"]
            assert states["dead"]["state"] == "reconnecting"
            assert "Connection refused" in states["dead"]["last_error"]
            # FFmpeg conceals the damage: the scrambled stream decodes to noise, matches nothing.
            assert states["corrupt"]["frames_sampled"]
            assert not events_for(service, "clean") and not events_for(service, "corrupt")

            # The publisher stops: the stream has ended (not failed) ...
            replay.stop.set()
            service.wait_for(
                lambda: service.streams()["rtmp-flagged"]["state"] == "ended",
                timeout_s=10,
                what="'ended' after the publisher stopped",
            )
            assert service.get("/readyz") == {
                "ready": True,
                "blocklist": [{"source": "files", "loaded": True, "entries": 12}] * 2,
            }
        finally:
            exit_code = service.stop()
    log = service.log()
    assert exit_code == 0, log
    assert "live/flagged" not in log and "/live/clean" not in log  # keys never logged


def test_publisher_restart_is_watched_again(nginx_rtmp: NginxRtmp, tmp_path):
    """The publisher leaves and publishes again at once: a new broadcast, whose kill at
    the same stream time as one of the first broadcast's is another decision, with its
    own event id (docs/events.md, "Event ids")."""
    url = nginx_rtmp.rtmp_url("cam")
    service = Service(["--config", str(config_file(tmp_path, {"cam": url}))], tmp_path / "run.log")
    second_loop = 10.0  # the clip loops every 10 s: a kill at or after this is in its 2nd
    try:
        rounds: list[dict] = []  # each broadcast's first kill in its clip's 2nd loop
        # Guard sampling takes the flagged picture at 13.5 or 14.0 s: publish again (at
        # most 4 broadcasts) until two broadcasts' kills fall at the same stream time.
        while len(rounds) < 4 and len({e["frame"]["pts_s"] for e in rounds}) == len(rounds):
            before = len(events_for(service, "cam"))
            with publishing(FLAGGED_720, [url], loop=True):
                rounds.append(
                    service.wait_for(
                        lambda before=before: next(
                            (
                                e
                                for e in events_for(service, "cam")[before:]
                                if e["frame"]["pts_s"] >= second_loop
                            ),
                            None,
                        ),
                        timeout_s=35,
                        what=f"a kill in the 2nd loop of broadcast number {len(rounds) + 1}",
                    )
                )
            service.wait_for(
                lambda: service.streams()["cam"]["state"] == "ended",
                timeout_s=10,
                what="'ended' after the publisher left",
            )
        assert service.streams()["cam"]["connects"] == len(rounds)
        second = rounds[-1]
        (first,) = [e for e in rounds[:-1] if e["frame"]["pts_s"] == second["frame"]["pts_s"]]
        assert first["detected_at"] < second["detected_at"]
        # Same stream, entry and stream time, but a new broadcast: not a duplicate.
        assert first["event_id"] != second["event_id"]
    finally:
        assert service.stop() == 0, service.log()
    assert service.log().count("cam: broadcast of ") == len(rounds)


def test_publisher_leaving_late_in_a_gop_has_ended(nginx_rtmp: NginxRtmp, tmp_path):
    """In keyframe mode a close more than read_timeout_s after the last keyframe reads
    as a stall; the server's answer to the reconnect shows the publisher has gone.

    (An open that waits longer than read_timeout_s for nginx's first keyframe doubles
    the stream's timeouts: the stall can then be read as the close it is, at once.)"""
    url = nginx_rtmp.rtmp_url("cam")
    short_reads = FAST_RETRIES.replace("read_timeout_s = 2", "read_timeout_s = 1")  # GOP: 2 s
    assert short_reads != FAST_RETRIES
    keyframe_mode = '\n[sampling]\nmode = "keyframes"\n'
    config = config_file(tmp_path, {"cam": url}, extra=short_reads + EVERY_LOOP + keyframe_mode)
    keyframes = tmp_path / "keyframes.jsonl"
    service = Service(["--config", str(config)], tmp_path / "run.log")
    try:
        with publishing(FLAGGED_720, [url], loop=True, keyframe_log=keyframes) as replay:
            service.wait_for(
                lambda: service.streams()["cam"]["frames_sampled"] >= 2,
                timeout_s=15,
                what="keyframes sampled",
            )
            last_sent = json.loads(keyframes.read_text().splitlines()[-1])["sent_at"]
            time.sleep(max(0.0, last_sent + 1.5 - time.time()))
            replay.stop.set()
        service.wait_for(
            lambda: service.streams()["cam"]["state"] == "ended",
            timeout_s=10,
            what="'ended' after the publisher left",
        )
    finally:
        assert service.stop() == 0, service.log()
    log = service.log()
    read_timeouts = "nothing received" in log.partition("): watching")[0]
    assert read_timeouts or "reconnecting: cam: read failed after" in log  # a stall at first


class BlackHole:
    """A TCP server that accepts connections and never says anything."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.held:
            connection.close()


def test_stalls_time_out_and_reconnect(nginx_rtmp: NginxRtmp, tmp_path):
    black_hole = BlackHole()
    streams = {
        "paused": nginx_rtmp.rtmp_url("paused"),
        "silent": f"rtmp://127.0.0.1:{black_hole.port}/live/x",
    }
    try:
        with ffmpeg_publish(CLEAN, nginx_rtmp.rtmp_url("paused")) as publisher:
            service = Service(
                ["--config", str(config_file(tmp_path, streams))], tmp_path / "run.log"
            )
            try:
                service.wait_for(
                    lambda: service.streams()["paused"]["frames_sampled"] >= 1,
                    timeout_s=15,
                    what="watching the publisher",
                )
                # A server that accepts and then says nothing: open times out (4 s).
                silent = service.wait_for(
                    lambda: (s := service.streams()["silent"])["last_error"] and s,
                    timeout_s=10,
                    what="the silent server timing out",
                )
                assert silent["state"] == "reconnecting"

                # The publisher freezes: nothing arrives, the read times out (2 s).
                publisher.send_signal(signal.SIGSTOP)
                stalled = service.wait_for(
                    lambda: (s := service.streams()["paused"])["state"] == "reconnecting" and s,
                    timeout_s=2 + 4,
                    what="the stalled stream timing out",
                )
                publisher.send_signal(signal.SIGCONT)
                service.wait_for(
                    lambda: (
                        service.streams()["paused"]["connects"] >= 2
                        and service.streams()["paused"]["state"] == "watching"
                    ),
                    timeout_s=15,
                    what="watching again after the stall",
                )
                assert "nothing received for" in stalled["last_error"]
            finally:
                assert service.stop() == 0, service.log()
    finally:
        black_hole.close()


def test_local_files_are_refused(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamguard",
            "run",
            "--blocklist",
            str(BLOCKLIST),
            "--stream",
            "x=file:///etc/passwd",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "streamguard: error: file:///etc/passwd: URL scheme 'file' is not enabled "
        "(enabled: http, https, rtmp, rtmps)"
    ]


def test_streams_split_over_two_processes(nginx_rtmp: NginxRtmp, tmp_path):
    urls = [nginx_rtmp.rtmp_url(f"cam{n}") for n in range(2)]
    with publishing(FLAGGED_720, urls, loop=True):
        service = Service(
            [
                "--config",
                str(config_file(tmp_path, {"a": urls[0], "b": urls[1]})),
                "--processes",
                "2",
            ],
            tmp_path / "run.log",
        )
        try:
            service.wait_for(
                lambda: events_for(service, "a") and events_for(service, "b"),
                timeout_s=30,
                what="detections from both worker processes",
            )
            assert set(service.streams()) == {"a", "b"}
            workers = {event["worker_id"] for event in service.events}
            assert len(workers) == 2  # one per process (host/pid)
            readiness = service.get("/readyz")
            assert readiness["ready"] and len(readiness["blocklist"]) == 2  # one per process
        finally:
            assert service.stop() == 0, service.log()


def test_playlist_naming_local_files_is_not_followed(hls_dir, http_base, tmp_path):
    segments = sorted(hls_dir.glob("*.ts"))  # they hold the flagged picture: reading = detecting
    (hls_dir / "evil.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
        + "".join(f"#EXTINF:2.0,\nfile://{segment}\n" for segment in segments)
    )
    url = f"{http_base}/evil.m3u8"
    service = Service(["--config", str(config_file(tmp_path, {"evil": url}))], tmp_path / "run.log")
    try:
        state = service.wait_for(
            lambda: (s := service.streams()["evil"])["reconnects"] >= 2 and s,
            timeout_s=20,
            what="repeated refusals",
        )
        assert state["state"] == "reconnecting" and state["frames_sampled"] == 0
        assert service.events == []
    finally:
        assert service.stop() == 0, service.log()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--blocklist", str(BLOCKLIST)], "no streams: give --stream ID=URL"),
        (["--stream", "a=rtmp://h/live/k"], "no blocklist: give --blocklist FILE"),
        (["--blocklist", str(BLOCKLIST), "--stream", "nourl"], "--stream 'nourl': expected ID=URL"),
        (
            [
                "--blocklist",
                str(BLOCKLIST),
                "--stream",
                "a=rtmp://h/l/1",
                "--stream",
                "a=rtmp://h/l/2",
            ],
            "stream id 'a' is configured twice",
        ),
    ],
)
def test_bad_run_settings_are_one_line_errors(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "streamguard", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"streamguard: error: {message}")
