"""A publisher restarts its broadcast within a second of being killed and shows the
same picture at the same stream time: each broadcast's kill must reach a platform that
deduplicates on `event_id` as a kill of its own (docs/events.md, "Event ids")."""

import time

import pytest

from .scene import Scene

pytestmark = pytest.mark.integration
ROUNDS = 4  # restarts at most, until two broadcasts' kills fall at the same stream time


def test_broadcast_restarted_within_a_second(redis, mosquitto, nginx, tmp_path, record):
    record.fault = (
        "a broadcast restarted within a second of its kill, showing the flagged picture "
        "again at the same stream time"
    )
    with Scene(tmp_path, redis, mosquitto, nginx) as scene:
        encoder = scene.encoders["flagged-a"]
        kills: list[dict] = []  # each broadcast's first kill
        for _ in range(ROUNDS):
            restarted = time.time()
            encoder.restart()  # at once after the kill before: republished 0.5 s later
            kill = scene.service.wait_for(
                lambda since=restarted + 0.3: scene.delivered_for("flagged-a", since),
                25,
                "a kill of the restarted broadcast",
            )[0]
            kills.append(kill)
            if any(k["frame"]["pts_s"] == kill["frame"]["pts_s"] for k in kills[:-1]):
                break
        pts = [k["frame"]["pts_s"] for k in kills]
        same = [k for k in kills if pts.count(k["frame"]["pts_s"]) > 1]
        assert len(same) >= 2, f"no two broadcasts killed at the same stream time: {pts}"
        record.detection_kept = True
        record.saw(
            f"{len(kills)} restarts, each published again 0.5 s after its connection closed; "
            f"kills at stream times {', '.join(f'{p:.1f} s' for p in pts)}; "
            f"{len(same)} at {same[0]['frame']['pts_s']:.1f} s, under "
            f"{len({k['event_id'] for k in same})} distinct event ids"
        )
        assert len({k["event_id"] for k in same}) == len(same)
        begun = scene.metric('streamguard_broadcasts_total{agreement="local"}')
        assert begun >= len(scene.encoders) + len(kills)  # every stream's first, each restart
        record.saw(f'`streamguard_broadcasts_total{{agreement="local"}}` {begun:.0f}')
        scene.conclude(record)
