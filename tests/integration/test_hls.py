"""Scanning a live-style URL: HLS served over HTTP on loopback."""

import json

from streamguard.cli import main

from ..conftest import SAMPLES

BLOCKLIST = str(SAMPLES / "blocklist.csv")


def test_scan_hls_url_finds_the_flagged_frame_and_redacts_the_token(capsys, http_base):
    url = f"{http_base}/index.m3u8?token=s3cret"
    code = main(["scan", "--json", "--blocklist", BLOCKLIST, url])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    matches = [json.loads(line) for line in captured.out.splitlines()]
    assert {m["list"] for m in matches} == {"streamguard-samples"}
    assert all(m["source"] == f"{http_base}/index.m3u8?token=***" for m in matches)
    assert "s3cret" not in captured.out + captured.err


def test_playlist_cannot_make_us_read_local_files(capsys, http_base, hls_dir):
    """A network playlist naming a local segment must not be followed."""
    local_segments = sorted(hls_dir.glob("*.ts"))
    evil = hls_dir / "evil.m3u8"
    evil.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        + "".join(f"#EXTINF:2.0,\nfile://{segment}\n" for segment in local_segments)
        + "#EXT-X-ENDLIST\n"
    )
    code = main(["scan", "--blocklist", BLOCKLIST, f"{http_base}/evil.m3u8"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("streamguard: error: ")


def test_dead_url_is_a_clean_error(capsys):
    code = main(["scan", "--blocklist", BLOCKLIST, "http://127.0.0.1:9/live.m3u8"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == [
        "streamguard: error: http://127.0.0.1:9/live.m3u8: cannot open (Connection refused)"
    ]
