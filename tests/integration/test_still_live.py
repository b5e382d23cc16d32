"""A kill nobody honours (docs/events.md, "Kills nobody honours"): no enforcer runs, so
the flagged broadcast airs on after its kill on real nginx-rtmp. streamguard looks at
the killed stream every `still_live_after_s` and repeats the kill, with an id of its
own, until the broadcast ends."""

import jsonschema
import pytest

from streamguard.events.schema import json_schema

from ..support.service import Service
from .conftest import NginxRtmp, publishing
from .test_run import BLOCKLIST, FAST_RETRIES, FLAGGED_720

pytestmark = pytest.mark.integration
AFTER_S = 3


def test_a_killed_stream_still_publishing_is_escalated_until_it_ends(
    nginx_rtmp: NginxRtmp, tmp_path
):
    url = nginx_rtmp.rtmp_url("cam")
    config = tmp_path / "streamguard.toml"
    config.write_text(
        f'[blocklist]\nfiles = ["{BLOCKLIST}"]\n{FAST_RETRIES}'
        f"[policy]\nstill_live_after_s = {AFTER_S}\n"
        f'[[streams]]\nid = "cam"\nurl = "{url}"\n'
    )
    service = Service(["--config", str(config)], tmp_path / "run.log")
    try:
        with publishing(FLAGGED_720, [url], loop=True):
            service.wait_for(lambda: service.streams()["cam"]["state"] == "killed", 25, "the kill")
            escalations = service.wait_for(
                lambda: (e := [e for e in service.events if e["reason"] == "still_live"])[1:] and e,
                6 * AFTER_S + 10,
                "two escalations while the broadcast airs on",
            )
        (kill,) = [e for e in service.events if e["reason"] == "match"]
        for number, escalation in enumerate(escalations[:2], 1):
            jsonschema.validate(escalation, json_schema())
            assert escalation["action"] == "kill"
            assert escalation["escalation"]["of"] == kill["event_id"]
            assert escalation["escalation"]["number"] == number
            assert escalation["escalation"]["killed_at"] == kill["detected_at"]
            assert escalation["match"] == kill["match"]  # what it was killed for
        ids = {e["event_id"] for e in service.events}
        assert len(ids) == len(service.events)  # each repetition an id of its own
        # The broadcast ends: looks find it ended, and the kill is repeated no more.
        ended = service.wait_for(
            lambda: service.metrics().get('streamguard_still_live_checks_total{outcome="ended"}'),
            3 * AFTER_S + 10,
            "a look finding the broadcast ended",
        )
        repeated = len([e for e in service.events if e["reason"] == "still_live"])
        service.wait_for(
            lambda: (
                service.metrics()['streamguard_still_live_checks_total{outcome="ended"}'] > ended
            ),
            3 * AFTER_S + 10,
            "another look",
        )
        assert len([e for e in service.events if e["reason"] == "still_live"]) == repeated
        metrics = service.metrics()
        assert metrics["streamguard_escalations_total"] == repeated
        assert service.streams()["cam"]["escalations"] == repeated
        assert service.streams()["cam"]["state"] == "killed"
    finally:
        assert service.stop() == 0, service.log()
    log = service.log()
    assert f"after its kill (event {kill['event_id']}): kill repeated, number 1" in log
    assert "live/cam" not in log  # the stream key is never logged
