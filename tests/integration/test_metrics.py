"""/metrics of a running service: valid for promtool, and moving as streams are watched."""

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..support.service import Service
from .conftest import NginxRtmp, publishing
from .test_run import BLOCKLIST, EVERY_LOOP, FAST_RETRIES, FLAGGED_720
from .test_run_redis import LOOP_S, add_image

pytestmark = pytest.mark.integration
DEAD = "rtmp://127.0.0.1:1/live/key"  # nothing listens there: the stream stays reconnecting


@contextmanager
def flagged_and_dead_streams(
    nginx_rtmp: NginxRtmp, tmp_path: Path, settings: str
) -> Iterator[Service]:
    """`streamguard run` with ``settings`` (top-level keys and tables), watching the
    flagged clip looping on stream "cam" and a stream "dead"; on exit it must stop with 0."""
    url = nginx_rtmp.rtmp_url("cam")
    config = tmp_path / "streamguard.toml"
    config.write_text(
        f'{settings}[[streams]]\nid = "cam"\nurl = "{url}"\n'
        f'[[streams]]\nid = "dead"\nurl = "{DEAD}"\n'
    )
    with publishing(FLAGGED_720, [url], loop=True):
        service = Service(["--config", str(config)], tmp_path / "run.log")
        try:
            yield service
        finally:
            assert service.stop() == 0, service.log()


def scrape(service: Service) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return reply.read().decode()


def value(text: str, sample: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("processes", [1, 2])
def test_metrics_pass_promtool_and_count_a_kill(nginx_rtmp: NginxRtmp, tmp_path, processes):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: install the Debian package prometheus", pytrace=False)
    settings = (
        f'processes = {processes}\nstate_dir = "state"\n[blocklist]\nfiles = ["{BLOCKLIST}"]\n'
        f"{FAST_RETRIES}"
    )
    with flagged_and_dead_streams(nginx_rtmp, tmp_path, settings) as service:
        service.wait_for(
            lambda: value(scrape(service), 'streamguard_decisions_total{action="kill"}'),
            30,
            "a kill counted",
        )
        text = scrape(service)
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert value(text, 'streamguard_streams{state="killed"}') == 1
    assert value(text, 'streamguard_streams{state="reconnecting"}') == 1
    assert value(text, "streamguard_frames_sampled_total") >= 1
    assert value(text, "streamguard_detection_latency_seconds_count") == 1
    assert value(text, 'streamguard_events_published_total{action="kill"}') == 1
    assert value(text, 'streamguard_reconnects_total{reason="open_failed"}') >= 1
    assert value(text, 'streamguard_blocklist_entries{algo="pdq"}') == 4
    assert "streamguard_build_info{" in text
    assert "streamguard_enforce_" not in text  # enforce's metrics are its own


def test_metrics_follow_a_broker_outage(redis, mosquitto, nginx_rtmp: NginxRtmp, tmp_path):
    """Redis blocklist, MQTT events, one dead stream: each metric moves as it should."""
    add_image(redis, "flagged_01")
    settings = (
        f'processes = 1\nstate_dir = "state"\n[redis]\nurl = "{redis.url}"\n'
        f'[mqtt]\nurl = "{mosquitto.url()}"\n{FAST_RETRIES}{EVERY_LOOP}'
    )

    def published(service: Service) -> float:
        return value(scrape(service), 'streamguard_events_published_total{action="kill"}') or 0

    with flagged_and_dead_streams(nginx_rtmp, tmp_path, settings) as service:
        service.wait_for(lambda: published(service), 30, "a kill published")
        text = scrape(service)
        assert value(text, 'streamguard_connected{service="redis"}') == 1
        assert value(text, 'streamguard_connected{service="mqtt"}') == 1
        assert value(text, 'streamguard_blocklist_entries{algo="pdq"}') >= 1
        assert value(text, "streamguard_blocklist_staleness_seconds") < 5
        assert value(text, 'streamguard_streams{state="watching"}') == 1
        assert value(text, 'streamguard_streams{state="reconnecting"}') == 1
        assert value(text, 'streamguard_reconnects_total{reason="open_failed"}') >= 1
        assert 0 < value(text, "streamguard_keyframe_age_max_seconds") < 15
        assert value(text, "streamguard_ingest_lag_max_seconds") < 5
        sampled = value(text, "streamguard_frames_sampled_total")
        assert value(text, "streamguard_frames_decoded_total") >= sampled >= 1
        assert value(text, "streamguard_hash_duration_seconds_count") >= 1
        assert value(text, 'streamguard_matches_total{algo="pdq",category="test"}') >= 1
        assert value(text, "streamguard_decision_latency_seconds_count") >= 1
        assert value(text, "streamguard_detection_latency_seconds_count") >= 1
        assert value(text, "streamguard_outbox_events") == 0
        for quiet in (
            "streamguard_frames_dropped_total",
            "streamguard_decode_errors_total",
            "streamguard_internal_errors_total",
            "streamguard_outbox_refused_total",
        ):
            assert value(text, quiet) == 0, quiet

        mosquitto.kill()  # kill -9: the next kill waits in the outbox
        service.wait_for(
            lambda: value(scrape(service), "streamguard_outbox_events") == 1,
            LOOP_S + 10,
            "a kill waiting in the outbox",
        )
        text = scrape(service)
        assert value(text, 'streamguard_connected{service="mqtt"}') == 0
        assert value(text, "streamguard_publish_failures_total") >= 1
        assert value(text, "streamguard_outbox_oldest_age_seconds") > 0
        before = published(service)

        mosquitto.start()
        service.wait_for(
            lambda: value(scrape(service), "streamguard_outbox_events") == 0,
            20,
            "the outbox emptied",
        )
        text = scrape(service)
        assert value(text, 'streamguard_connected{service="mqtt"}') == 1
        assert published(service) > before
        assert value(text, "streamguard_outbox_oldest_age_seconds") == 0
