"""Re-upload of a killed stream (issue 18, part 5): from ``streamguard incident open``
returning to ``streamguard api`` refusing the recording nginx-rtmp wrote of that stream.
Target: ≤ 1 s.

Real parts on this machine, on loopback: redis-server, Debian nginx-rtmp recording every
stream (tests/support), one `streamguard run` (one process) and one `streamguard api`,
both following the Redis blocklist. Nothing in the list matches the footage.

Each round publishes the clean sample clip (1280x720, crf 28, a keyframe every 2 s) on a
stream of its own, watched in the default guard mode; once run has sampled
``--frames`` of it, the round opens an incident on it with the CLI (a subprocess, as an
operator runs it), stops the publisher (nginx closes the recording), and POSTs the
recording to ``/v1/match`` until the answer is ``kill``. The figure is the time from the
CLI returning to that answer: the publisher leaving, nginx closing the file, the
upload and its scan, and the incident's entries reaching the API (attempts = 1: they
were there for the first upload). Then the incident is closed and the round waits until
the API answers the same recording with no decision, so the next round's footage is new
again.

Writes bench/out/reupload.json and bench/out/reupload.md.
"""

import argparse
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import parse
from bench.bench_incident import cli, publishing
from bench.processes import wait_until
from bench.report import header, percentiles, publish, saved, table, verdict
from streamguard.samples import SAMPLES_DIR
from tests.support.api_process import Api, api_process, until_decided
from tests.support.nginx import NginxRtmp, nginx_rtmp_server
from tests.support.redis import RedisServer
from tests.support.service import Service

CLIP = SAMPLES_DIR / "clips" / "clean_720p.mp4"
LISTED = SAMPLES_DIR / "flagged" / "flagged_02.png"  # a list the footage does not match
TARGET_S = 1.0
KEYFRAME_INTERVAL_S = 2.0  # the clip's: guard samples about one frame per keyframe
ANSWER_TIMEOUT_S = 15.0
SMOKE = {"rounds": 1}
# Streams are published one round at a time: run retries the others often, so it plays a
# stream within a second of its publisher starting.
RETRIES = "[ingest]\nreconnect_initial_s = 0.5\nreconnect_max_s = 1\n"


def config(work: Path, streams: dict[str, str]) -> Path:
    path = work / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{url}"\n' for i, url in streams.items())
    path.write_text(f"processes = 1\n[redis]\ntimeout_s = 1\n{RETRIES}{tables}")
    return path


def one_round(
    run: Service, api: Api, redis: RedisServer, nginx: NginxRtmp, stream: str, frames: int
) -> dict[str, Any]:
    key = f"{stream}-key"
    with publishing(CLIP, nginx.rtmp_url(key)):
        wait_until(
            lambda: run.streams()[stream]["frames_sampled"] >= frames,
            30 + frames * KEYFRAME_INTERVAL_S,
            f"{stream} watched",
            interval_s=0.1,
        )
        started = time.monotonic()
        opened = cli(redis, "open", stream)
        returned = time.monotonic()
        if opened.returncode != 0:
            raise RuntimeError(f"incident open {stream}: {opened.stderr.strip()}")
    nginx.wait_unpublished(key, ANSWER_TIMEOUT_S)
    closed = time.monotonic()
    recording = nginx.recording(key)
    attempts, answer_s, answer = 0, 0.0, {}
    while answer.get("decision") != "kill":
        if time.monotonic() - returned > ANSWER_TIMEOUT_S:
            raise RuntimeError(f"{stream}'s recording not refused within {ANSWER_TIMEOUT_S} s")
        attempts += 1
        posted = time.monotonic()
        _, answer = api.match(recording.read_bytes())
        answer_s = time.monotonic() - posted
    refused = time.monotonic()
    listed = f"incident-{opened.stdout.strip()}"
    if {match["list"] for match in answer["matches"]} != {listed}:
        raise RuntimeError(f"{stream}'s recording refused on other lists than {listed}")
    shut = cli(redis, "close", opened.stdout.strip())
    if shut.returncode != 0:
        raise RuntimeError(f"incident close: {shut.stderr.strip()}")
    status, after = until_decided(api, recording, ANSWER_TIMEOUT_S, decision=None)
    if (status, after["decision"]) != (200, None):
        raise RuntimeError(f"{stream}'s recording still refused after the incident closed")
    return {
        "refused_after_return_s": refused - returned,
        "refused_after_cli_start_s": refused - started,
        "cli_s": returned - started,
        "recording_closed_s": closed - returned,
        "answer_s": answer_s,
        "attempts": attempts,
        "recording_s": answer["media"]["duration_s"],
        "recording_bytes": recording.stat().st_size,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    work = (args.out / "reupload").resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = header(args, "pyav", "nginx", "redis")
    redis = RedisServer(work / "redis")
    redis.start()
    with ExitStack() as stack:
        stack.callback(redis.kill)
        command = [sys.executable, "-m", "streamguard", "blocklist", "add-image", str(LISTED)]
        subprocess.run([*command, "--redis", redis.url], check=True, capture_output=True)
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False, record=True))
        ids = [f"r{n}" for n in range(1, args.rounds + 1)]
        urls = {i: nginx.rtmp_url(f"{i}-key") for i in ids}
        api = stack.enter_context(api_process(["--redis", redis.url], work / "api.log"))
        run = Service(["--config", str(config(work, urls)), "--redis", redis.url], work / "run.log")
        stack.callback(run.stop)
        results["rounds"] = [one_round(run, api, redis, nginx, i, args.frames) for i in ids]
    rounds = results["rounds"]
    for name in (
        "refused_after_return_s",
        "refused_after_cli_start_s",
        "cli_s",
        "recording_closed_s",
        "answer_s",
    ):
        results[name] = percentiles([r[name] for r in rounds])
    return results


def markdown(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    worst = results["refused_after_return_s"]["max"]

    def row(name: str, key: str, target: str = "", result: str = "") -> list[Any]:
        figures = results[key]
        return [name, f"{figures['p50']:.3f}", f"{figures['max']:.3f}", target, result]

    rows = [
        row(
            "recording refused, after `incident open` returned",
            "refused_after_return_s",
            f"≤ {TARGET_S:g}",
            verdict(worst <= TARGET_S),
        ),
        row("of which: the publisher left, nginx closed the file", "recording_closed_s"),
        row("the refusing upload's own answer (POST, scan)", "answer_s"),
        row("`incident open` itself (CLI start to exit)", "cli_s"),
        row("recording refused, after `incident open` started", "refused_after_cli_start_s"),
    ]
    lines = [
        f"`{results['command']}` ({results['date']}, {len(rounds)} rounds)",
        "",
        *table(["measurement (s)", "p50", "max", "target", "result"], rows),
        "",
        "Per round (s after return; uploads until kill; recording length): "
        + ", ".join(
            f"{r['refused_after_return_s']:.3f} ({r['attempts']}; {r['recording_s']:g} s)"
            for r in rounds
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="incidents, one stream each")
    parser.add_argument(
        "--frames", type=int, default=3, help="frames run samples of a stream before its incident"
    )
    args = parse(parser, SMOKE, "reupload")
    results = saved(args.out, "reupload") if args.render else measure(args)
    publish(args, "reupload", results, markdown)


if __name__ == "__main__":
    main()
