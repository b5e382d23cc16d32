"""The CLI end to end on the committed samples: results, exit codes, one-line errors."""

import json
import socket
import subprocess
import sys

import jsonschema
import pytest

from streamguard.cli import main
from streamguard.events.schema import json_schema

from ..conftest import SAMPLES

BLOCKLIST = str(SAMPLES / "blocklist.csv")
FLAGGED = str(SAMPLES / "clips" / "flagged_720p.mp4")
CLEAN = str(SAMPLES / "clips" / "clean_720p.mp4")


def scan(capsys, *args):
    code = main(["scan", "--blocklist", BLOCKLIST, *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.mark.parametrize("clip", ["flagged_720p.mp4", "flagged_360p.flv"])
def test_scan_finds_the_flagged_keyframe(capsys, clip):
    code, out, _ = scan(capsys, "--json", str(SAMPLES / "clips" / clip))
    assert code == 1
    matches = [json.loads(line) for line in out]
    assert matches
    # The keyframe; guard's probes may also land on the flagged frames around it.
    times = {m["pts_s"] for m in matches}
    assert 4.0 in times and all(3.5 <= t < 4.5 for t in times)
    assert {m["category"] for m in matches} == {"test"}
    pdq = [m for m in matches if m["algo"] == "pdq"]
    assert pdq and all(m["distance"] <= 31 and m["quality"] >= 50 for m in pdq)
    assert set(matches[0]) >= {"source", "pts_s", "algo", "distance", "entry_id", "list"}


def test_scan_clean_clips_exit_zero(capsys):
    code, out, err = scan(capsys, CLEAN, str(SAMPLES / "clips" / "clean_360p.flv"))
    assert (code, out) == (0, [])
    assert not [line for line in err if "error" in line]


def test_interval_sampling_also_finds_it(capsys):
    code, out, _ = scan(capsys, "--sample", "interval:0.5", FLAGGED)
    assert code == 1
    assert out[0].startswith(f"MATCH {FLAGGED}@")


def test_hash_of_an_image_and_of_video_keyframes(capsys):
    image = SAMPLES / "flagged" / "flagged_01.png"
    assert main(["hash", "--algo", "pdq", "--algo", "phash", str(image), CLEAN]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[1:] and lines[0].endswith(str(image))
    video_lines = [line for line in lines if "@" in line]
    assert len(video_lines) == 2 * 5  # two algorithms x keyframes at 0, 2, 4, 6, 8 s
    assert len(lines[0].split()[0]) == 64 and len(lines[1].split()[0]) == 16


def one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("streamguard: error: ")
    return err[0]


def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.mp4"
    assert one_line_error(capsys, ["scan", "--blocklist", BLOCKLIST, str(missing)]).endswith(
        f"{missing}: no such file"
    )


def test_corrupt_file(capsys, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(range(256)) * 64)
    assert "corrupt.mp4: cannot open" in one_line_error(
        capsys, ["scan", "--blocklist", BLOCKLIST, str(corrupt)]
    )


def test_truncated_file(capsys, tmp_path):
    truncated = tmp_path / "truncated.flv"
    data = (SAMPLES / "clips" / "flagged_360p.flv").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    code = main(["scan", "--blocklist", BLOCKLIST, str(truncated)])
    captured = capsys.readouterr()
    assert code == 2
    assert "truncated.flv: ended at" in captured.err


def test_unsupported_scheme(capsys):
    message = one_line_error(capsys, ["scan", "--blocklist", BLOCKLIST, "ftp://u:pw@h/a.mp4"])
    assert "URL scheme 'ftp' is not enabled" in message
    assert "pw" not in message


def test_malformed_blocklist_line(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("algo,hash,id\npdq,zz,1\n")
    message = one_line_error(capsys, ["scan", "--blocklist", str(bad), CLEAN])
    assert message == f"streamguard: error: {bad}: line 2: pdq hash is not hexadecimal"


def test_one_bad_source_does_not_stop_the_others(capsys, tmp_path):
    code = main(["scan", "--blocklist", BLOCKLIST, str(tmp_path / "gone.mp4"), FLAGGED])
    captured = capsys.readouterr()
    assert code == 2  # an incomplete scan is an error, even with matches printed
    assert captured.out.startswith("MATCH ")
    assert "gone.mp4: no such file" in captured.err


def test_console_script_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "streamguard", "scan", "--blocklist", BLOCKLIST, "x.mp4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "streamguard: error: x.mp4: no such file\n"


def test_run_on_a_port_in_use_says_so_in_one_line():
    """Another process on run's HTTP port: exit 2 and the address, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        watch = ["--stream", "cam=rtmp://127.0.0.1:1/live/cam", "--blocklist", BLOCKLIST]
        result = subprocess.run(
            [sys.executable, "-m", "streamguard", "run", "--http", f"127.0.0.1:{port}", *watch],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"streamguard: error: cannot listen on 127.0.0.1:{port} (Address already in use)"


def test_oversized_frames_are_never_hashed(capsys, tmp_path):
    import av
    import numpy as np

    wide = tmp_path / "wide.mkv"
    with av.open(str(wide), "w") as container:
        stream = container.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = 8200, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((24, 8200), np.uint8), format="yuv420p")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    message = one_line_error(capsys, ["scan", "--blocklist", BLOCKLIST, str(wide)])
    assert message.endswith("video is 8200x16, larger than 8192 px on a side")
    assert "Traceback" not in capsys.readouterr().err


def test_demo_detects_in_real_time(capsys):
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert len(events) == 1
    event = events[0]
    jsonschema.validate(event, json_schema())  # what a platform would receive
    assert event["stream_id"] == "demo"
    # The flagged picture shows from 3.5 s: guard samples its first frame (a scene cut),
    # else the keyframe at 4 s.
    assert event["action"] == "kill" and event["frame"]["pts_s"] in (3.5, 4.0)
    assert event["match"]["category"] == "test"
    assert 0 <= event["latency_ms"] < 1000
    assert "decided" in captured.err


def test_duration_stops_each_source(capsys):
    code, out, _ = scan(capsys, "--duration", "3", FLAGGED)  # the flagged keyframe is at 4 s
    assert (code, out) == (0, [])


def test_out_of_range_max_distance_is_refused_without_a_traceback():
    """Exit 2 (error), not a traceback and 1 (match): the index cannot search that far."""
    result = subprocess.run(
        [sys.executable, "-m", "streamguard", "scan", "--max-distance", "pdq=200", CLEAN],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "streamguard scan: error: argument --max-distance: 'pdq=200': pdq distance 200 is out "
        "of range: 0 to 128 (half of 256 bits; unrelated pictures are about that far apart)"
    )


@pytest.mark.parametrize("command", ["scan", "run"])
@pytest.mark.parametrize("flag", ["phash=65", "dhash=33", "pdq=129"])
def test_max_distance_flag_out_of_range(capsys, command, flag):
    with pytest.raises(SystemExit) as exited:
        main([command, "--blocklist", BLOCKLIST, "--max-distance", flag, CLEAN])
    assert exited.value.code == 2
    algo, _, value = flag.partition("=")
    assert f"'{flag}': {algo} distance {value} is out of range: 0 to " in capsys.readouterr().err


def test_max_distance_flag_at_the_limit_scans(capsys):
    code, _, err = scan(capsys, "--max-distance", "pdq=128", "--max-distance", "phash=32", CLEAN)
    assert code in (0, 1) and not [line for line in err if "error" in line]


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ("[blocklist]\nmax_distance = { pdq = 200 }\n", "blocklist.max_distance.pdq"),
        ("[policy]\nmax_distance = { phash = 33 }\n", "policy.max_distance.phash"),
        ("[policy.csam]\ninstant_distance = { pdq = 129 }\n", "policy.csam.instant_distance.pdq"),
    ],
)
def test_run_config_distance_out_of_range(capsys, tmp_path, table, where):
    path = tmp_path / "streamguard.toml"
    path.write_text(table)
    message = one_line_error(capsys, ["run", "--config", str(path), "--stream", f"a={CLEAN}"])
    assert message.startswith(f"streamguard: error: {path}: {where}: ")
    assert "is out of range: 0 to " in message


def test_hash_of_a_corrupt_image(capsys, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    message = one_line_error(capsys, ["hash", str(broken)])
    assert message.startswith(f"streamguard: error: {broken}: not a readable image")


def test_progress_bar_on_a_terminal(tmp_path):
    """tqdm draws on stderr only when it is a terminal."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # child: stdout and stderr are the terminal, 80 columns wide
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.execv(sys.executable, [sys.executable, "-m", "streamguard", "hash", CLEAN])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    assert b"%|" in output  # tqdm's bar
