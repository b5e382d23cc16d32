"""A publisher who has read the code, against `streamguard run` on nginx-rtmp.

Each case (streamguard/evaluation/adversary.py) is published at once, in real time, to
one `run` with the default sampling: keyframe dodging, a long GOP, stall-and-burst,
an oversized frame before the flagged picture, and a stream of nothing but oversized
frames. The full-length cases, with their detection probability over time and CPU,
are `streamguard eval --adversarial` (docs/sampling.md).
"""

import json
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from streamguard.evaluation import adversary

from ..conftest import SAMPLES
from ..hostile.media import Tag, read_flv, write_flv
from ..support.nginx import NginxRtmp
from ..support.service import Service
from .conftest import publishing
from .test_run import BLOCKLIST

SMALL = (640, 360)
MAX_GAP_S = 2.0  # the default
CASES = {
    case.name: case
    for case in (
        adversary.dodge(0.97, seconds=24, size=SMALL),
        adversary.long_gop(gop_s=10, show_s=5, seconds=24, size=SMALL),
        adversary.stall_and_burst(flagged_gops=2, benign_gops=3, size=SMALL),
        adversary.oversized(seconds=10, oversize_s=3.0, size=SMALL),  # 3 s: seen from its start
        adversary.unwatchable(seconds=16),
    )
}
# Deterministic enough for CI: a probe in every GOP (the default, one per 6 s, is
# measured by eval --adversarial), and every flagged GOP its own incident. nginx-rtmp
# starts a player at a keyframe: opening the 10 s GOP stream takes patience.
CONFIG = """
[ingest]
open_timeout_s = 4
reconnect_initial_s = 0.5
reconnect_max_s = 2

[policy]
keep_watching_after_kill = true
incident_gap_s = 5

[sampling]
probe_every_s = 2
"""


def picture(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("adversary")
    flagged = picture(SAMPLES / "flagged" / "flagged_01.png")
    benign = picture(SAMPLES / "images" / "control_01.png")
    return {
        name: adversary.write_clip(directory / f"{name}.flv", case, flagged, benign)
        for name, case in CASES.items()
    }


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class SendLog:
    """Wall-clock send time of each keyframe (replay's keyframe log) of one stream."""

    def __init__(self, path: Path) -> None:
        self.keyframes = [json.loads(line) for line in path.read_text().splitlines()]

    def sent_at(self, stream_s: float) -> float:
        """When the frame ``stream_s`` after the first went out: its GOP's keyframe's send
        time plus the time into the GOP (a stall delays only whole GOPs)."""
        first = self.keyframes[0]["pts_s"]
        before = [k for k in self.keyframes if k["pts_s"] - first <= stream_s + 1e-6]
        keyframe = before[-1]
        return keyframe["sent_at"] + stream_s - (keyframe["pts_s"] - first)


def test_a_publisher_cannot_choose_what_is_seen(nginx_rtmp: NginxRtmp, clips, tmp_path):
    urls = {name: nginx_rtmp.rtmp_url(name) for name in CASES}
    config = tmp_path / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{u}"\n' for i, u in urls.items())
    config.write_text(f'[blocklist]\nfiles = ["{BLOCKLIST}"]\n{CONFIG}{tables}')
    service = Service(["--config", str(config)], tmp_path / "run.log")
    logs = {name: tmp_path / f"{name}.keyframes.jsonl" for name in CASES}
    try:
        service.wait_for(lambda: service.get("/readyz"), 20, "ready")
        with ExitStack() as publishers:
            for name, case in CASES.items():
                publishers.enter_context(
                    publishing(
                        clips[name], [urls[name]], keyframe_log=logs[name], stall_s=case.stall()
                    )
                )
            service.wait_for(
                lambda: (
                    decided(service, "stall-burst") >= 2
                    and service.streams()["long-gop-10s"]["keyframe_interval_s"]
                ),
                timeout_s=45,
                what="a decision on every flagged GOP of the stall-and-burst stream",
            )
        streams = service.streams()
    finally:
        assert service.stop() == 0, service.log()
    events = {name: [e for e in service.events if e["stream_id"] == name] for name in CASES}

    # Keyframe dodging: found by a probe between keyframes.
    dodge = events["dodge-97"][0]  # one per incident: probes may miss for longer than its gap
    assert dodge["action"] == "kill" and dodge["frame"]["pts_s"] % 2.0 > 0.1, dodge
    assert streams["dodge-97"]["probes"] > 0 and streams["dodge-97"]["sample"] == "guard"

    # A long GOP: the picture first shown between keyframes is decided within max_gap + 1 s.
    (long_gop,) = events["long-gop-10s"]
    shown_at = SendLog(logs["long-gop-10s"]).sent_at(CASES["long-gop-10s"].flagged_from_s)
    assert epoch(long_gop["detected_at"]) - shown_at <= MAX_GAP_S + 1.0, long_gop
    assert streams["long-gop-10s"]["keyframe_interval_s"] == pytest.approx(10.0, abs=0.1)

    # Stall and burst: every flagged GOP decided, though each arrived 4.6 s late at once.
    assert [e["action"] for e in events["stall-burst"]] == ["kill", "kill"]
    assert streams["stall-burst"]["live_edge_skips"] == 0  # the publisher's lag: not skipped

    # An oversized second: the flagged picture after it is decided as if it were not there.
    (oversize,) = events["oversize"]
    assert oversize["action"] == "kill" and oversize["frame"]["pts_s"] < 3.0 + 2.1
    assert streams["oversize"]["frames_too_large"] > 0

    # Nothing but oversized frames: a review of its own, within seconds; still watched.
    review = events["unwatchable"][0]  # incident_gap_s here (5 s) is shorter than a report's
    assert {(e["action"], e["reason"]) for e in events["unwatchable"]} == {
        ("review", "unwatchable")
    }
    assert review["unwatchable"]["cause"] == "too_large" and "match" not in review
    started = SendLog(logs["unwatchable"]).sent_at(0.0)
    assert epoch(review["detected_at"]) - started <= 5.0 + 3.0  # unwatchable_after_s + open
    assert streams["unwatchable"]["state"] != "failed"


def decided(service: Service, stream_id: str) -> int:
    return sum(event["stream_id"] == stream_id for event in service.events)


def every_frame_flagged_key(source: Path, target: Path) -> Path:
    """``source`` (FLV) with every video frame's tag saying "keyframe" (frame type 1)."""
    header, tags = read_flv(source)
    flagged = [
        Tag(t.kind, t.timestamp_ms, bytes([0x10 | t.body[0] & 0x0F]) + t.body[1:])
        if t.kind == 9 and t.body[1] == 1  # a video tag holding NAL units, not a header
        else t
        for t in tags
    ]
    return write_flv(target, header, flagged)


def test_keyframe_flags_the_publisher_sets_are_not_believed(clips, tmp_path, capsys):
    """Every FLV tag says "keyframe", the real ones are 10 s apart. FFmpeg's H.264
    parser sets the packets' keyframe flags from their NAL unit types, not from the
    container's: the long GOP is still sampled every max_gap_s. (This pins that
    behaviour of the FFmpeg in PyAV's wheel: a decoder fed P-frames as keyframes would
    give no picture, and guard's deadlines would never pass.)"""
    from streamguard.cli import main

    lying = every_frame_flagged_key(clips["long-gop-10s"], tmp_path / "lying.flv")
    _, tags = read_flv(lying)
    assert all(t.body[0] >> 4 == 1 for t in tags if t.kind == 9)
    with av.open(str(lying)) as container:
        flags = [p.is_keyframe for p in container.demux(video=0) if p.size]
    assert sum(flags) == 3  # the IDR frames at 0, 10 and 20 s
    code = main(["scan", "--blocklist", str(BLOCKLIST), "--json", str(lying)])
    matched = [json.loads(line)["pts_s"] for line in capsys.readouterr().out.splitlines()]
    case = CASES["long-gop-10s"]
    assert code == 1 and matched
    assert min(matched) <= case.flagged_from_s + MAX_GAP_S + 1 / 30
