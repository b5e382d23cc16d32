"""The whole loop on real parts: a flagged broadcast on nginx-rtmp is detected by
`streamguard run`, the kill goes over mosquitto, and `streamguard enforce` ends it."""

import time

import pytest

from ..support.mosquitto import Mosquitto
from ..support.nginx import nginx_rtmp_server
from ..support.ports import free_port
from ..support.service import Service
from ..support.subscriber import Subscriber
from .conftest import ffmpeg_publish
from .test_enforce_nginx import SECRET, Enforce, refused, wait_until
from .test_run import BLOCKLIST, FAST_RETRIES, FLAGGED_720

pytestmark = pytest.mark.integration


def test_flagged_broadcast_is_dropped_and_its_republish_refused(mosquitto: Mosquitto, tmp_path):
    port = free_port()
    hook = f"http://127.0.0.1:{port}/on_publish?secret={SECRET}"
    with nginx_rtmp_server(tmp_path / "nginx", hls=False, on_publish=hook) as nginx:
        (tmp_path / "hook-secret").write_text(SECRET)
        config = tmp_path / "streamguard.toml"
        config.write_text(
            f'processes = 1\nstate_dir = "state"\n[blocklist]\nfiles = ["{BLOCKLIST}"]\n'
            f'[mqtt]\nurl = "{mosquitto.url()}"\n'
            f'[enforce]\nadapter = "nginx-rtmp"\napi_url = "{nginx.control_url}"\n'
            f'listen = "127.0.0.1:{port}"\nhook_secret_file = "hook-secret"\n'
            f'state_file = "state/enforce.sqlite3"\n{FAST_RETRIES}'
            f'[[streams]]\nid = "cam"\nurl = "{nginx.rtmp_url("cam-key")}"\n'
        )
        subscriber = Subscriber(mosquitto.port, "streamguard/v1/kill/+")
        enforce = Enforce(config, port, tmp_path / "enforce.log")
        service = Service(["--config", str(config)], tmp_path / "run.log")
        try:
            with ffmpeg_publish(FLAGGED_720, nginx.rtmp_url("cam-key")) as publisher:
                started = time.monotonic()
                wait_until(lambda: publisher.poll() is not None, 30, "the publisher dropped")
                on_air_s = time.monotonic() - started
            (kill,) = subscriber.on("kill", "cam")
            assert kill.json()["match"]["category"] == "test"
            assert service.streams()["cam"]["state"] == "killed"
            # The flagged picture is on the keyframe at 4 s; the drop follows within seconds.
            assert on_air_s < 4 + 2.5 + 3, on_air_s  # + connect and probe time
            assert refused(nginx, "cam-key")  # the encoder's reconnect is turned away
            assert enforce.metrics()['streamguard_enforce_drops_total{outcome="dropped"}'] == 1
        finally:
            assert service.stop() == 0, service.log()
            enforce.stop()
            subscriber.close()
