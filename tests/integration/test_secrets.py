"""Secrets never leave: a run with a stream key, a URL token, Redis and MQTT passwords and
a control secret planted everywhere they can be given, then every output searched for them.
The broker enforces deploy/mosquitto.acl, the ACL docs/reliability.md documents."""

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ..support.mosquitto import mosquitto_broker
from ..support.redis import redis_server
from ..support.service import Service
from ..support.subscriber import Subscriber
from .conftest import NginxRtmp, publishing
from .test_metrics import scrape
from .test_run import EVERY_LOOP, FAST_RETRIES, FLAGGED_720
from .test_run_redis import LOOP_S, add_image

pytestmark = pytest.mark.integration
ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.acl"
CONTROL = "streamguard/v1/control/streams/"
PLANTED = {
    "stream key": "planted-stream-key-5e1f",
    "URL token": "planted-url-token-77aa",
    "second key": "planted-second-key-19c0",
    "Redis password": "planted-redis-password-3b9d",
    "MQTT password": "planted-mqtt-password-c4e2",
    "control secret": "planted-control-secret-a0d8",
}
PASSWORDS = {"platform": "platform-password", "consumer": "consumer-password"}


def publishes(user: str, port: int, topic: str, payload: object) -> None:
    command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-u", user]
    command += ["-P", PASSWORDS[user], "-t", topic, "-m", json.dumps(payload)]
    subprocess.run(command, check=True, timeout=10)


def test_no_output_carries_a_planted_secret(nginx_rtmp: NginxRtmp, tmp_path):
    users = {"streamguard": PLANTED["MQTT password"], **PASSWORDS}
    with (
        redis_server(tmp_path / "redis", password=PLANTED["Redis password"]) as redis,
        mosquitto_broker(tmp_path / "mqtt", users=users, acl=ACL.read_text()) as broker,
    ):
        add_image(redis, "flagged_01")
        (tmp_path / "mqtt-password").write_text(PLANTED["MQTT password"])
        (tmp_path / "control-secret").write_text(PLANTED["control secret"])
        key, token = PLANTED["stream key"], PLANTED["URL token"]
        url = f"{nginx_rtmp.rtmp_url(key)}?token={token}"
        config = tmp_path / "streamguard.toml"
        config.write_text(
            f'processes = 1\nstate_dir = "state"\n[redis]\nurl = "{redis.url}"\ntimeout_s = 1\n'
            f'[mqtt]\nurl = "mqtt://streamguard@127.0.0.1:{broker.port}"\n'
            'password_file = "mqtt-password"\n'
            "[cluster]\nenabled = true\nlease_ttl_s = 4\n"
            '[control]\nsecret_file = "control-secret"\n'
            f'{FAST_RETRIES}{EVERY_LOOP}[[streams]]\nid = "cam"\nurl = "{url}"\n'
        )
        platform = Subscriber(
            broker.port, "streamguard/v1/#", user="platform", password=PASSWORDS["platform"]
        )
        with publishing(FLAGGED_720, [nginx_rtmp.rtmp_url(key)], loop=True), platform:
            service = Service(["--config", str(config)], tmp_path / "run.log")
            try:
                service.wait_for(lambda: platform.on("kill", "cam"), LOOP_S + 20, "a kill")
                # the platform registers a second stream on the control topic ...
                command = {
                    "action": "start",
                    "url": nginx_rtmp.rtmp_url(PLANTED["second key"]),
                    "secret": PLANTED["control secret"],
                }
                # (a read-only consumer can neither register one, even with the secret ...)
                publishes("consumer", broker.port, CONTROL + "third", command)
                publishes("platform", broker.port, CONTROL + "second", command)
                # ... nor forge a kill; the platform cannot either: it reads kills
                publishes("consumer", broker.port, "streamguard/v1/kill/y", {"forged": True})
                publishes("platform", broker.port, "streamguard/v1/kill/x", {"forged": True})
                service.wait_for(
                    lambda: "second" in service.streams(), 10, "the second stream registered"
                )
                assert "third" not in service.streams()
                # the webhook with its secret in the query string
                hook = (
                    f"http://127.0.0.1:{service.port}/control/nginx-rtmp"
                    f"?secret={PLANTED['control secret']}"
                )
                body = f"call=publish_done&app=live&name={PLANTED['second key']}".encode()
                with urllib.request.urlopen(hook, body, timeout=5) as reply:
                    assert reply.status == 200
                outputs = {
                    "/streams": json.dumps(service.get("/streams")),
                    "/readyz": json.dumps(service.get("/readyz")),
                    "/metrics": scrape(service),
                }
                time.sleep(1)  # the last status messages arrive
            finally:
                assert service.stop() == 0, service.log()
        outputs["stdout (events)"] = json.dumps(service.events)
        outputs["stderr (log)"] = service.log()
        outputs["MQTT messages"] = "\n".join(
            f"{m.topic} {m.payload.decode(errors='replace')}" for m in platform.messages
        )
    assert not [m for m in platform.messages if m.topic.endswith(("/kill/x", "/kill/y"))]
    assert platform.on("status", "second")  # the control command took effect
    leaks = [
        f"{what} in {where}"
        for where, text in outputs.items()
        for what, secret in PLANTED.items()
        if secret in text
    ]
    assert not leaks, leaks
    assert "/live/***" in outputs["stderr (log)"] and "/live/***" in outputs["/streams"]  # shown
