"""A stream whose host name does not resolve, next to healthy streams: it is retried
with back-off, the reason is counted and logged, and nothing else is disturbed."""

import time

import pytest

from .scene import LOOP_S, Scene

pytestmark = pytest.mark.integration
HOST = "streamguard-no-such-host.invalid"  # .invalid never resolves (RFC 6761)
OPEN_FAILED = 'streamguard_reconnects_total{reason="open_failed"}'
RETRIES = 4


def test_stream_host_does_not_resolve(redis, mosquitto, nginx, tmp_path, record):
    record.fault = f"DNS fails for one stream's host (`rtmp://{HOST}/live/…`)"
    streams = {"no-dns": f"rtmp://{HOST}/live/secret-key"}
    with Scene(tmp_path, redis, mosquitto, nginx, extra_streams=streams) as scene:
        healthy = [*scene.flagged, "clean"]
        before, failed = scene.streams(), scene.metric(OPEN_FAILED)
        started = time.time()
        retried = before["no-dns"]["reconnects"]
        state = scene.service.wait_for(
            lambda: (s := scene.streams()["no-dns"])["reconnects"] >= retried + RETRIES and s,
            30,
            f"{RETRIES} more retries",
        )
        elapsed = time.time() - started
        # FAST_RETRIES: back-off from 0.5 s doubling up to 2 s, each wait half to all of it
        assert elapsed >= 2.0, f"{RETRIES} retries in {elapsed:.1f} s: no back-off"
        assert state["state"] == "reconnecting" and state["frames_sampled"] == 0
        assert f"cannot resolve host '{HOST}'" in state["last_error"]
        assert "secret-key" not in state["last_error"]
        record.saw(
            f"`reconnecting`, {RETRIES} retries took {elapsed:.1f} s (back-off 0.5-2 s); "
            f"`last_error`: {state['last_error'].split(': ', 1)[1]!r}"
        )
        counted = scene.metric(OPEN_FAILED) - failed
        assert counted >= RETRIES
        record.saw(f"`{OPEN_FAILED}` +{counted:.0f}")
        scene.wait_detected_after(started, scene.flagged, LOOP_S + 5)
        record.detection_kept = True
        problems = scene.disturbed(healthy, before)
        record.others_unaffected = not problems
        scene.conclude(record)
        assert not problems, problems
        record.saw("the other streams watched throughout; their kills delivered")
    log = scene.service.log()
    assert f"stream no-dns (rtmp://{HOST}/live/***): reconnecting: " in log
    assert "secret-key" not in log
    record.saw("log: one `stream no-dns (URL): reconnecting: …` line (state changes only)")
    assert scene.exit_code == 0
