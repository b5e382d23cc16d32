"""/metrics of a running service: valid for promtool, and moving as streams are watched."""

import shutil
import subprocess
import urllib.request

import pytest

from ..support.service import Service
from .conftest import NginxRtmp, publishing
from .test_run import BLOCKLIST, FAST_RETRIES, FLAGGED_720

pytestmark = pytest.mark.integration


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
    url = nginx_rtmp.rtmp_url("cam")
    config = tmp_path / "streamguard.toml"
    config.write_text(
        f'processes = {processes}\nstate_dir = "state"\n[blocklist]\nfiles = ["{BLOCKLIST}"]\n'
        f'{FAST_RETRIES}[[streams]]\nid = "cam"\nurl = "{url}"\n'
        '[[streams]]\nid = "dead"\nurl = "rtmp://127.0.0.1:1/live/key"\n'
    )
    with publishing(FLAGGED_720, [url], loop=True):
        service = Service(["--config", str(config)], tmp_path / "run.log")
        try:
            service.wait_for(
                lambda: value(scrape(service), 'streamguard_decisions_total{action="kill"}'),
                30,
                "a kill counted",
            )
            text = scrape(service)
        finally:
            assert service.stop() == 0, service.log()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert value(text, 'streamguard_streams{state="killed"}') == 1
    assert value(text, 'streamguard_streams{state="reconnecting"}') == 1
    assert value(text, "streamguard_frames_sampled_total") >= 1
    assert value(text, "streamguard_detection_latency_seconds_count") == 1
    assert value(text, 'streamguard_blocklist_entries{algo="pdq"}') == 4
    assert "streamguard_build_info{" in text
