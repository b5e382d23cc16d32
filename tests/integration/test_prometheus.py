"""A real Prometheus scrapes a running `streamguard run` and evaluates deploy/'s rules on
it: the recording rules produce values and the alerts see the symptoms they are for."""

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ..support.ports import free_port, wait_for_ports
from ..support.processes import stop
from .conftest import NginxRtmp
from .test_metrics import flagged_and_dead_streams
from .test_run import BLOCKLIST, EVERY_LOOP, FAST_RETRIES

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "streamguard.rules.yml"


class Prometheus:
    def __init__(self, directory: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is needed: install the Debian package prometheus", False)
        directory.mkdir()
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: ['{RULES}']\n"
            "scrape_configs:\n  - job_name: streamguard\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.port = free_port()
        self.log = directory / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        wait_for_ports(self.port, alive=lambda: self.process.poll() is None)

    def api(self, path: str, **query: str) -> object:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())["data"]

    def value(self, expr: str) -> float | None:
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def close(self) -> None:
        stop(self.process, timeout_s=10)


def test_prometheus_evaluates_the_rules_on_a_live_service(nginx_rtmp: NginxRtmp, tmp_path):
    settings = f'processes = 1\n[blocklist]\nfiles = ["{BLOCKLIST}"]\n{FAST_RETRIES}{EVERY_LOOP}'
    with flagged_and_dead_streams(nginx_rtmp, tmp_path, settings) as service:
        prometheus = Prometheus(tmp_path / "prometheus", service.port)
        try:

            def evaluated() -> bool:
                frames = prometheus.value("job:streamguard_frames_sampled:rate5m")
                kills = prometheus.value('job:streamguard_decisions:rate5m{action="kill"}')
                return bool(frames and kills)

            service.wait_for(evaluated, 40, "recording rules with values")
            pending = {
                alert["labels"]["alertname"]
                for alert in prometheus.api("alerts")["alerts"]
                if alert["state"] in ("pending", "firing")
            }
            assert "StreamguardStreamsNotWatched" in pending  # the dead stream
            assert prometheus.value("job:streamguard_detection_latency_seconds:p99_rate5m") < 5
            broken = [
                rule["name"]
                for group in prometheus.api("rules")["groups"]
                for rule in group["rules"]
                if rule["health"] == "err"
            ]
            assert not broken, broken
        finally:
            prometheus.close()
