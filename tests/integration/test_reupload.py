"""Re-upload of a killed stream (issue 18, part 5): the recording of a stream an incident
killed a moment ago is refused by ``streamguard api``. Real redis-server, nginx-rtmp
recording every stream, a `run` process, the `streamguard incident` command and two API
processes.

The stream shows the clean sample clip: new footage, in no list. Once the incident is
open, the API following Redis refuses the recording nginx closed when the publisher
left. The same bytes sent to a replica loaded with the list as it was before the
incident (a snapshot exported before it was opened: the recording exists only once the
stream has ended) get no decision, so the refusal is the incident's. Another clip (the
clean 360p sample, another landscape) is not refused after the incident.
"""

import time
from contextlib import ExitStack

import pytest

from ..support.api_process import api_process, until_decided
from ..support.cli import blocklist
from ..support.nginx import nginx_rtmp_server
from ..support.redis import RedisServer
from ..support.service import Service
from .conftest import publishing
from .test_incidents import incident
from .test_run import CLEAN, FAST_RETRIES
from .test_run_redis import add_image

pytestmark = pytest.mark.integration
OTHER_CLIP = CLEAN.with_name("clean_360p.flv")  # drawn from another seed: other footage
REFUSED_WITHIN_S = 10.0  # generous: the figure is bench_reupload's


def test_recording_of_a_killed_stream_is_refused(redis: RedisServer, tmp_path):
    add_image(redis, "flagged_02")  # a list the footage does not match
    before = tmp_path / "before.csv"
    exported = blocklist(redis, "export")
    assert exported.returncode == 0, exported.stderr
    before.write_text(exported.stdout)
    with ExitStack() as stack:
        nginx = stack.enter_context(nginx_rtmp_server(tmp_path / "nginx", hls=False, record=True))
        url = nginx.rtmp_url("cam-key")
        config = tmp_path / "streamguard.toml"
        config.write_text(
            f"processes = 1\n[redis]\ntimeout_s = 1\n{FAST_RETRIES}"
            f'[[streams]]\nid = "cam"\nurl = "{url}"\n'
        )
        following = stack.enter_context(api_process(["--redis", redis.url], tmp_path / "api.log"))
        replica = stack.enter_context(
            api_process(["--blocklist", str(before)], tmp_path / "replica.log")
        )
        run = Service(["--config", str(config), "--redis", redis.url], tmp_path / "run.log")
        stack.callback(run.stop)
        with publishing(CLEAN, [url], loop=True):
            run.wait_for(lambda: run.streams()["cam"]["frames_sampled"] >= 4, 30, "cam watched")
            opened = incident(redis, "open", "cam")
            returned_at = time.monotonic()
            assert opened.returncode == 0, opened.stderr + run.log()
        # The publisher has left: nginx closes the recording, and it is uploaded at once.
        nginx.wait_unpublished("cam-key", REFUSED_WITHIN_S)
        recording = nginx.recording("cam-key")
        status, answer = until_decided(following, recording, REFUSED_WITHIN_S)
        refused_after_s = time.monotonic() - returned_at
        print(f"recording refused {refused_after_s:.3f} s after `incident open` returned")

        listed = f"incident-{opened.stdout.strip()}"
        assert (status, answer["decision"]) == (200, "kill"), (answer, following.log())
        assert refused_after_s <= REFUSED_WITHIN_S
        assert {m["list"] for m in answer["matches"]} == {listed}
        assert answer["media"]["kind"] == "video" and answer["media"]["frames_sampled"] > 1
        (event,) = run.events
        assert (event["stream_id"], event["reason"]) == ("cam", "incident")
        assert event["incident"]["list"] == listed

        for api, video in ((replica, recording), (following, OTHER_CLIP)):
            status, answer = api.match(video.read_bytes())
            assert (status, answer["decision"], answer["matches"]) == (200, None, []), answer
            assert answer["media"]["frames_sampled"] > 1
        assert run.stop() == 0, run.log()
