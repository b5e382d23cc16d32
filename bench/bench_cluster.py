"""Cluster takeover and scale-out (issue 7): K `streamguard run` hosts share N streams.

Real parts on this machine, on loopback: redis-server (tests/support/redis.py), Debian
nginx with the RTMP module (HLS off), one `streamguard replay --copies N --loop` of
streamguard/samples/clips/flagged_360p.flv, and K `streamguard run` processes ("hosts":
processes = 1, [cluster] enabled, product default lease TTL) that all register the same
N streams from their configuration. Each host's /streams is polled from outside, as a
platform would.

1. load: with every stream watched once, the CPU of the K process trees per
   stream-second, Redis commands per second (INFO commandstats delta), Redis CPU and
   memory, events per second.
2. takeover: R rounds of kill -9 of one host (rotating): seconds from the kill until every
   stream is watched exactly once by the survivors; the host is then started again (a
   new worker id, as a new pod would get) and the spread settles. The same with SIGTERM
   for a few rounds. The run logs (JSON) give each stream's claim and "watching" times.
   A stream given back (SIGTERM drain, rebalance) stays watched by its old holder while
   the new one opens it (runtime/process.py HANDOVER_OPEN_S): that double watching is the
   intended handover overlap, measured per stream from the logs (old holder "stopped"
   minus new holder "watching"; negative would be a gap), not counted as an error.
3. lease layer at scale: S registered streams and W ClusterMember objects in this process
   (the shipped heartbeat code, no media), beating on the same Redis in real time: script
   cost, Redis CPU and memory, and the lease takeover after one member stops beating.
4. a projection to 10,000 concurrent streams, on paper, from 1-3 and the live-runtime
   figures in BENCHMARKS.md.

Writes bench/out/cluster.json and bench/out/cluster.md; --plot PNG draws the takeovers.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import parse
from bench.bench_live import STREAMGUARD
from bench.processes import machine_busy, started, tree_cpu_s, wait_until
from bench.progress import measure_window
from bench.report import commit, header, percentiles, publish, saved, table, verdict
from streamguard.config import ClusterSettings, parse_stream
from streamguard.infra import registry as registry_module
from streamguard.infra.redis import RedisSettings
from streamguard.infra.registry import Keys
from streamguard.runtime import cluster as cluster_module
from streamguard.runtime.cluster import ClusterMember
from streamguard.samples import SAMPLES_DIR
from tests.support.nginx import NginxRtmp, nginx_rtmp_server
from tests.support.redis import RedisServer
from tests.support.service import Service

CLIP = SAMPLES_DIR / "clips" / "flagged_360p.flv"  # 10 s, 640x360, 30 fps, 2 s GOP
FLAGGED = SAMPLES_DIR / "flagged" / "flagged_02.png"  # shown at 4 s of each loop
GOP_S = 2.0
LOOP_S = 10.0
TTL_S = ClusterSettings().lease_ttl_s  # the product default
PREFIX = RedisSettings().prefix
SECRET = "bench-control-secret"
# Two hosts, one kill -9 round (a SIGTERM round would add 11 s), a 2 s lease TTL, 4
# simulated members.
SMOKE = {
    "hosts": 2,
    "streams": 2,
    "ttl": 2.0,
    "rounds": 1,
    "term_rounds": 0,
    "load_seconds": 1,
    "sim_streams": 100,
    "sim_workers": [4],
    "sim_seconds": 1,
}
# BENCHMARKS.md, "Live: detection latency and scale (issue 3)": `run` CPU s per
# stream-second at N = 200, 720p30 with a 2 s GOP, PDQ + pHash + dHash per keyframe.
LIVE_CPU_PER_STREAM_S = 0.0046
EVENTS_PER_S_PER_SINK = 1300  # BENCHMARKS.md, events: burst, one MqttSink, QoS 1
CLAIMED = re.compile(r"cluster: claimed stream '([^']+)'")
WATCHING = re.compile(r"stream (\S+) \(.*\): watching$")
MATCHED = re.compile(r"stream \S+: (kill|review): matched ")
STOPPED = re.compile(r"stream (\S+) \(.*\): stopped$")
ADD_IMAGE = [STREAMGUARD, "blocklist", "add-image"]
RELEASED = re.compile(r"cluster: released (\d+) streams")
# Commands the cluster's Lua scripts call: Redis counts them in commandstats as well.
SCRIPT_COMMANDS = {
    name.lower()
    for module, script in [
        (cluster_module, "_HEARTBEAT"),
        (cluster_module, "_RELEASE"),
        (registry_module, "_REGISTER"),
        (registry_module, "_UNREGISTER"),
    ]
    for name in re.findall(r"redis\.call\('(\w+)'", getattr(module, script))
}


def now_s() -> float:
    return time.time()


# -- the hosts ----------------------------------------------------------------------------


def watching(services: dict[str, Service]) -> dict[str, list[str]]:
    """Stream ids each answering service watches now (a dead one is left out)."""
    found = {}
    for name, service in services.items():
        try:
            states = service.get("/streams")
        except (OSError, ValueError):  # refused, reset, half-written: not watching anything
            continue
        found[name] = [s["stream_id"] for s in states if s["state"] == "watching"]
    return found


def counts(now: dict[str, list[str]]) -> Counter:
    return Counter(stream for streams in now.values() for stream in streams)


def once_each(now: dict[str, list[str]], streams: set[str]) -> bool:
    seen = counts(now)
    return set(seen) == streams and max(seen.values()) == 1


@dataclass
class Timeline:
    """Polls after an instant t0: (seconds since t0, streams unwatched, streams watched
    more than once)."""

    t0: float
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def add(self, now: dict[str, list[str]], streams: set[str]) -> None:
        seen = counts(now)
        unwatched = len(streams - set(seen))
        doubled = sum(1 for n in seen.values() if n > 1)
        self.samples.append((round(now_s() - self.t0, 3), unwatched, doubled))

    def stream_seconds(self, column: int) -> float:
        """Integral of a column over time (each poll's value held until the next)."""
        total = 0.0
        for (t, *values), (t_next, *_) in zip(self.samples, self.samples[1:], strict=False):
            total += values[column - 1] * (t_next - t)
        return round(total, 2)

    def summary(self) -> dict[str, Any]:
        return {
            "unwatched_stream_s": self.stream_seconds(1),
            "max_unwatched": max((s[1] for s in self.samples), default=0),
            "doubled_stream_s": self.stream_seconds(2),
            "max_doubled": max((s[2] for s in self.samples), default=0),
        }


class Hosts:
    """K `streamguard run` processes, each its own cluster member; restarted under a new
    worker id each time (a new pod), with JSON logs."""

    def __init__(self, work: Path, redis_url: str, urls: dict[str, str], args: Any) -> None:
        self.work, self.redis_url, self.urls, self.args = work, redis_url, urls, args
        self.streams = set(urls)
        self.services: dict[str, Service] = {}
        self.generation: Counter = Counter()
        self.retired: list[Service] = []  # stopped services, for their events and logs
        self.logs: list[Path] = []

    def start(self, name: str) -> Service:
        generation = self.generation[name]
        self.generation[name] += 1
        directory = self.work / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "secret").write_text(SECRET)
        tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{u}"\n' for i, u in self.urls.items())
        config = directory / f"streamguard-{generation}.toml"
        config.write_text(
            f'processes = 1\nworker_id = "{name}-{generation}"\nstate_dir = "state"\n'
            f'[redis]\nurl = "{self.redis_url}"\n'
            f"[cluster]\nenabled = true\nlease_ttl_s = {self.args.ttl}\n"
            f'[control]\nsecret_file = "secret"\n'
            # Every loop of the clip shows the flagged picture: keep watching after a kill
            # (else the stream leaves the "watching" state), one incident per loop.
            "[policy]\nkeep_watching_after_kill = true\nincident_gap_s = 5\n"
            f"{tables}"
        )
        log = self.work / f"{name}-{generation}.log"
        self.logs.append(log)
        service = Service(["--config", str(config)], log, start_timeout_s=60)
        self.services[name] = service
        return service

    def watching(self) -> dict[str, list[str]]:
        return watching(self.services)

    def share(self) -> int:
        return math.ceil(len(self.streams) / len(self.services))

    def settled(self) -> bool:
        """Every stream watched exactly once, no host above its fair share."""
        now = self.watching()
        return (
            len(now) == len(self.services)
            and once_each(now, self.streams)
            and max(len(v) for v in now.values()) <= self.share()
        )

    def settle(self, timeout_s: float, timeline: Timeline | None = None) -> float:
        """Wait until settled in two polls in a row; the seconds it took."""
        start, in_a_row = now_s(), 0
        while True:
            now = self.watching()
            if timeline is not None:
                timeline.add(now, self.streams)
            ok = (
                len(now) == len(self.services)
                and once_each(now, self.streams)
                and max(len(v) for v in now.values()) <= self.share()
            )
            in_a_row = in_a_row + 1 if ok else 0
            if in_a_row == 2:
                return round(now_s() - start, 2)
            if now_s() - start > timeout_s:
                raise TimeoutError(f"the spread did not settle within {timeout_s:.0f} s: {now}")
            time.sleep(self.args.poll_s)

    def retire(self, name: str) -> Service:
        service = self.services.pop(name)
        self.retired.append(service)
        return service

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for name in list(self.services):
            codes[name] = self.retire(name).stop()
        return codes

    def all_events(self) -> list[dict[str, Any]]:
        return [e for s in [*self.retired, *self.services.values()] for e in s.events]


# -- logs ---------------------------------------------------------------------------------


def log_records(path: Path) -> list[tuple[float, str, str]]:
    """(epoch seconds, level, message) of a JSON log; other lines (tracebacks) as ERROR."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            moment = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            when = moment.replace(tzinfo=UTC).timestamp()
            records.append((when, record["level"], record["message"]))
        except (ValueError, KeyError, TypeError):
            records.append((0.0, "ERROR", line))
    return records


def stream_times(logs: list[Path], since: float, streams: set[str]) -> dict[str, dict[str, float]]:
    """For each of ``streams``: the first claim after ``since`` in any log, and the first
    "watching" after that claim in the same log (epoch seconds)."""
    found: dict[str, dict[str, float]] = {}
    for path in logs:
        claimed: dict[str, float] = {}
        for when, _, message in log_records(path):
            if when < since:
                continue
            if (match := CLAIMED.search(message)) and match.group(1) in streams:
                claimed.setdefault(match.group(1), when)
            elif (match := WATCHING.search(message)) and match.group(1) in claimed:
                stream = match.group(1)
                if stream not in found or claimed[stream] < found[stream]["claimed"]:
                    found[stream] = {"claimed": claimed[stream], "watching": when}
    return found


def stopped_times(logs: list[Path], since: float, streams: set[str]) -> dict[str, float]:
    """For each of ``streams``: the first "stopped" after ``since`` in any of ``logs``."""
    found: dict[str, float] = {}
    for path in logs:
        for when, _, message in log_records(path):
            match = STOPPED.search(message)
            if when >= since and match and match.group(1) in streams:
                found[match.group(1)] = min(when, found.get(match.group(1), when))
    return found


def handover(new: dict[str, dict[str, float]], stopped: dict[str, float]) -> dict[str, list[float]]:
    """Per moved stream: the old holder's "stopped" minus the new holder's "watching"
    (positive: watched twice meanwhile, the intended overlap; negative: a gap)."""
    both = sorted(set(new) & set(stopped))
    return {"overlap_s": [round(stopped[s] - new[s]["watching"], 3) for s in both]}


def twin_events(events: list[dict[str, Any]], window_s: float = 3.0) -> dict[str, int]:
    """Events about the same stream and entry from two workers within ``window_s``: one
    picture seen by both holders during a handover overlap. Consumers deduplicate on
    ``event_id``, so the pair should share it."""
    pairs = same_id = 0
    by_stream: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in events:
        by_stream.setdefault((e["stream_id"], e["match"]["entry_id"]), []).append(e)
    for group in by_stream.values():
        group.sort(key=lambda e: e["detected_at"])
        for a, b in itertools.pairwise(group):
            apart = datetime.fromisoformat(b["detected_at"]) - datetime.fromisoformat(
                a["detected_at"]
            )
            if a["worker_id"] != b["worker_id"] and apart.total_seconds() <= window_s:
                pairs += 1
                same_id += a["event_id"] == b["event_id"]
    return {"pairs": pairs, "same_event_id": same_id}


def log_findings(logs: list[Path], skip: re.Pattern[str] | None = None) -> dict[str, Any]:
    """Warnings and errors in the run logs, by message shape (numbers and ids masked);
    messages ``skip`` matches (expected warnings, such as decisions) left out."""
    shapes: Counter = Counter()
    examples: dict[str, str] = {}
    for path in logs:
        for _, level, message in log_records(path):
            if skip is not None and skip.search(message):
                continue
            if level in ("WARNING", "ERROR", "CRITICAL"):
                shape = re.sub(r"'[^']*'|\d+(\.\d+)?", "#", f"{level} {message}")[:160]
                shapes[shape] += 1
                examples.setdefault(shape, f"{path.name}: {message}"[:400])
    return {
        "counts": dict(shapes.most_common()),
        "examples": examples,
        "tracebacks": sum(
            "Traceback" in path.read_text(errors="replace") for path in logs if path.exists()
        ),
    }


# -- 1. load ------------------------------------------------------------------------------


def redis_info(client: redis.Redis) -> dict[str, Any]:
    cpu = client.info("cpu")
    return {
        "commands": {
            name.removeprefix("cmdstat_"): (int(stat["calls"]), int(stat["usec"]))
            for name, stat in client.info("commandstats").items()
        },
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "used_memory": int(client.info("memory")["used_memory"]),
    }


def command_delta(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict:
    """Calls per second and µs per call of each command over a window (the benchmark's own
    INFO calls left out)."""
    rows = {}
    for name, (calls, usec) in after["commands"].items():
        calls0, usec0 = before["commands"].get(name, (0, 0))
        if name == "info" or calls == calls0:
            continue
        rows[name] = {
            "per_s": round((calls - calls0) / seconds, 3),
            "usec_per_call": round((usec - usec0) / (calls - calls0), 2),
        }
    return dict(sorted(rows.items(), key=lambda item: -item[1]["per_s"]))


def key_bytes(client: redis.Redis, prefix: str) -> dict[str, int]:
    keys = Keys(prefix)
    names = {
        "streams": keys.streams,
        "leases": keys.leases,
        "owners": keys.owners,
        "fence": keys.fence,
        "workers": keys.workers,
    }
    return {name: int(client.memory_usage(key, samples=0) or 0) for name, key in names.items()}


def stream_counters(hosts: Hosts) -> dict[str, int]:
    totals: Counter = Counter()
    for service in hosts.services.values():
        for state in service.get("/streams"):
            for key in ("connects", "reconnects", "frames_sampled", "frames_dropped"):
                totals[key] += state[key]
            totals["detections"] += state["detections"]
    return dict(totals)


def bench_load(
    hosts: Hosts, server: RedisServer, others: dict[str, int], seconds: float
) -> dict[str, Any]:
    """CPU, Redis and events over a window with every stream watched once."""
    client = redis.Redis.from_url(server.url)
    hosts.settle(60)
    pids = {name: s.process.pid for name, s in hosts.services.items()}
    cpu0 = {name: tree_cpu_s(pid) for name, pid in pids.items()}
    other0 = {name: tree_cpu_s(pid) for name, pid in others.items()}
    redis_cpu0 = tree_cpu_s(server.process.pid)
    streams0 = stream_counters(hosts)
    busy0 = machine_busy()
    info0 = redis_info(client)
    start = now_s()
    events0 = len(hosts.all_events())
    measure_window(seconds, "load window", lambda: len(hosts.all_events()) - events0)
    info1 = redis_info(client)
    window = now_s() - start
    busy1 = machine_busy()
    streams1 = stream_counters(hosts)
    cpu = {name: tree_cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
    other = {name: tree_cpu_s(pid) - other0[name] for name, pid in others.items()}
    redis_cpu = tree_cpu_s(server.process.pid) - redis_cpu0
    events = [
        e
        for e in hosts.all_events()
        if start <= datetime.fromisoformat(e["detected_at"]).timestamp() <= start + window
    ]
    still = hosts.settled()
    n = len(hosts.streams)
    commands = command_delta(info0, info1, window)
    sent = {k: v for k, v in commands.items() if k not in SCRIPT_COMMANDS}
    inside = {k: v for k, v in commands.items() if k in SCRIPT_COMMANDS}
    return {
        "window_s": round(window, 1),
        "streams": n,
        "hosts": len(hosts.services),
        "settled_at_end": still,
        "run_cpu_s": {name: round(v, 2) for name, v in cpu.items()},
        "cpu_s_per_stream_s": round(sum(cpu.values()) / (n * window), 5),
        "run_cores": round(sum(cpu.values()) / window, 3),
        "other_cores": {name: round(v / window, 3) for name, v in other.items()},
        "machine_busy_pct": round(100 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]), 1),
        "loadavg_1m": os.getloadavg()[0],
        "redis": {
            "commands_per_s": round(sum(row["per_s"] for row in sent.values()), 2),
            "evalsha_per_s": commands.get("evalsha", {}).get("per_s", 0.0),
            "script_commands_per_s": round(sum(row["per_s"] for row in inside.values()), 2),
            "commands": sent,
            "script_commands": inside,
            "cpu_s_per_s_info": round((info1["cpu_s"] - info0["cpu_s"]) / window, 5),
            "cpu_s_per_s_proc": round(redis_cpu / window, 5),
            "used_memory_mb": round(info1["used_memory"] / 2**20, 2),
            "cluster_key_bytes": key_bytes(client, PREFIX),
        },
        "streams_delta": {k: streams1[k] - streams0.get(k, 0) for k in streams1},
        "events": len(events),
        "events_per_stream_s": round(len(events) / (n * window), 4),
    }


# -- 2. takeover --------------------------------------------------------------------------


def poll_until(
    condition: Callable[[], bool], timeout_s: float, poll_s: float, what: str
) -> float | None:
    start = now_s()
    while now_s() - start < timeout_s:
        if condition():
            return now_s()
        time.sleep(poll_s)
    print(f"  {what}: not within {timeout_s:.0f} s")
    return None


def takeover_round(
    hosts: Hosts, number: int, victim: str, how: str, rng: random.Random
) -> dict[str, Any]:
    """Stop ``victim`` (kill -9 or SIGTERM) once the spread has settled; time until every
    stream is watched once by the survivors; then start it again and let it settle."""
    args = hosts.args
    hosts.settle(90)
    time.sleep(rng.uniform(0, args.ttl / 4))  # a random phase against the heartbeats
    before = hosts.watching()
    orphans = set(before.get(victim, []))
    service = hosts.services[victim]
    survivors = {n: s for n, s in hosts.services.items() if n != victim}
    t0 = now_s()
    service.process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    timeline = Timeline(t0)
    covered: list[float] = []  # when the survivors first watched every stream once

    def done() -> bool:
        # After a SIGTERM the leaving host keeps watching its streams while the survivors
        # open them (the handover overlap): wait for both.
        now = watching(survivors)
        leaving = watching({victim: service}) if how == "term" else {}
        timeline.add({**now, **leaving}, hosts.streams)
        if not covered and once_each(now, hosts.streams):
            covered.append(now_s())
        return bool(covered) and not any(leaving.values())

    finished = poll_until(done, args.ttl + 30, args.poll_s, f"round {number}: takeover")
    if how == "term":  # how long the drain and the handover overlap held the process up
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(30)
        exited = now_s() - t0
    code = hosts.retire(victim).stop()
    result: dict[str, Any] = {
        "round": number,
        "how": how,
        "victim": victim,
        "orphans": len(orphans),
        "exit_code": code,
        "takeover_s": round(covered[0] - t0, 3) if covered else None,
        **timeline.summary(),
        "timeline": timeline.samples,
    }
    if how == "term":  # the leaving host stopped watching (polled)
        result["leaving_stopped_s"] = None if finished is None else round(finished - t0, 3)
        result["exited_s"] = round(exited, 2)
    # Per stream, from the survivors' logs: claimed after t0, then watching.
    times = stream_times(hosts.logs, t0, orphans)
    claims = [v["claimed"] - t0 for v in times.values()]
    opens = [v["watching"] - v["claimed"] for v in times.values()]
    result["from_logs"] = {
        "streams": len(times),
        "first_claim_s": round(min(claims), 3) if claims else None,
        "last_claim_s": round(max(claims), 3) if claims else None,
        "last_watching_s": round(max(v["watching"] - t0 for v in times.values()), 3)
        if times
        else None,
        "claim_s": [round(c, 3) for c in claims],
        "open_s": [round(o, 3) for o in opens],
    }
    if how == "term":
        released = [
            when
            for when, _, message in log_records(service.log_path)
            if when >= t0 and RELEASED.search(message)
        ]
        result["released_after_s"] = round(released[0] - t0, 3) if released else None
        result["handover"] = handover(times, stopped_times([service.log_path], t0, orphans))
    # The host comes back (a new worker id, as a replaced pod) and gets its share.
    restarted = now_s()
    newcomer = hosts.start(victim)
    rebalance = Timeline(now_s())
    try:
        settle_s = hosts.settle(60, rebalance)
        moved = stream_times([newcomer.log_path], restarted, hosts.streams)
        others = [s.log_path for n, s in hosts.services.items() if n != victim]
        result["restart"] = {
            "process_up_s": round(rebalance.t0 - restarted, 2),
            "settled_s": round(settle_s + rebalance.t0 - restarted, 2),
            "moved": len(moved),
            "newcomer_watching_s": round(max(v["watching"] for v in moved.values()) - restarted, 2)
            if moved
            else None,
            **rebalance.summary(),
            **handover(moved, stopped_times(others, restarted, set(moved))),
        }
    except TimeoutError as exc:
        result["restart"] = {"error": str(exc)}
    return result


def bench_takeover(hosts: Hosts, rng: random.Random) -> list[dict[str, Any]]:
    args = hosts.args
    names = sorted(hosts.services)
    plan = [("kill", names[r % len(names)]) for r in range(args.rounds)]
    plan += [("term", names[r % len(names)]) for r in range(args.term_rounds)]
    rounds = []
    for number, (how, victim) in enumerate(plan):
        result = takeover_round(hosts, number, victim, how, rng)
        logs = result["from_logs"]
        print(
            f"  {how} {victim}: {result['orphans']} streams, watched once again after "
            f"{result['takeover_s']} s (claims {logs['first_claim_s']}-{logs['last_claim_s']} s); "
            f"restart settled after {result['restart'].get('settled_s')} s"
        )
        rounds.append(result)
        if result["takeover_s"] is None or "error" in result["restart"]:
            if args.smoke:
                raise RuntimeError(f"round {number}: the cluster did not recover")
            print("  stopping the rounds: the cluster did not recover")
            break
    return rounds


# -- 3. the lease layer at scale ----------------------------------------------------------


async def simulate(
    url: str, streams: int, workers: int, ttl: float, seconds: float, crash: bool
) -> dict[str, Any]:
    """``streams`` registrations and ``workers`` ClusterMembers beating in real time."""
    prefix = f"benchsim{workers}:"
    share = math.ceil(streams / workers)
    capacity = 2 * share  # headroom, so a lost member's streams fit in the others
    claims: dict[str, tuple[float, int]] = {}
    beat_s: list[tuple[float, float]] = []  # (when, seconds) of every heartbeat call
    cluster = ClusterSettings(enabled=True, capacity=capacity, lease_ttl_s=ttl)

    def member(i: int) -> ClusterMember:
        def start(stream: Any, lease: Any) -> None:
            claims[stream.id] = (now_s(), i)

        m = ClusterMember(
            RedisSettings(url=url, prefix=prefix), cluster, f"sim-{i}", start, lambda *_: None
        )
        script = m._heartbeat  # timed from this side: Redis' reply, the network, our loop

        async def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await script(*a, **k)
            finally:
                beat_s.append((now_s(), time.perf_counter() - t))

        m._heartbeat = timed
        return m

    members = [member(i) for i in range(workers)]
    client = redis.Redis.from_url(url)
    t = now_s()
    batch = 50  # concurrent registrations (the client's pool is bounded)
    for first in range(0, streams, batch):
        await asyncio.gather(
            *(
                members[0].registry.register(
                    parse_stream("bench", f"sim{n}", f"rtmp://10.0.0.1/live/sim{n}", "keyframes"),
                    "bench",
                )
                for n in range(first, min(first + batch, streams))
            )
        )
    registered_s = now_s() - t
    t = now_s()
    tasks = []
    for m in members:  # joined over one heartbeat interval, not in lockstep
        tasks.append(asyncio.create_task(m.run()))
        await asyncio.sleep(ttl / 4 / workers)

    def balanced() -> bool:
        held = [len(m.leases) for m in members]
        return sum(held) == streams and max(held) <= share

    while not balanced():
        if now_s() - t > 120:
            raise TimeoutError(f"sim {workers}: not balanced in 120 s")
        await asyncio.sleep(0.1)
    balanced_s = now_s() - t
    await asyncio.sleep(ttl / 4)  # one whole round of plain renewals before the window
    info0 = redis_info(client)
    start = now_s()
    await asyncio.get_running_loop().run_in_executor(
        None, measure_window, seconds, f"lease layer, {workers} members"
    )
    window = now_s() - start
    info1 = redis_info(client)
    commands = command_delta(info0, info1, window)
    evalsha = commands.get("evalsha", {"per_s": 0.0, "usec_per_call": None})
    cpu_per_s = (info1["cpu_s"] - info0["cpu_s"]) / window
    latencies = [s for when, s in beat_s if start <= when <= start + window]
    result: dict[str, Any] = {
        "streams": streams,
        "workers": workers,
        "held_per_worker": share,
        "capacity": capacity,
        "registered_s": round(registered_s, 2),
        "all_claimed_balanced_s": round(balanced_s, 2),
        "window_s": round(window, 1),
        "evalsha_per_s": evalsha["per_s"],
        "usec_per_heartbeat": evalsha["usec_per_call"],
        "commands_per_s": round(
            sum(v["per_s"] for k, v in commands.items() if k not in SCRIPT_COMMANDS), 2
        ),
        "redis_cpu_s_per_s": round(cpu_per_s, 4),
        "redis_cpu_us_per_heartbeat": round(1e6 * cpu_per_s / evalsha["per_s"], 1)
        if evalsha["per_s"]
        else None,
        "heartbeat_round_trip_ms": percentiles(latencies, 1000),
        "key_bytes": key_bytes(client, prefix),
    }
    result["bytes_per_stream"] = round(sum(result["key_bytes"].values()) / streams, 1)
    if crash:
        victim, task = members[0], tasks[0]
        held = set(victim.leases)

        async def no_drain() -> None:  # a crash gives nothing back
            return None

        victim._drain = no_drain
        t0 = now_s()
        task.cancel()
        while not all(claims[s][0] > t0 and claims[s][1] != 0 for s in held):
            if now_s() - t0 > 3 * ttl + 10:
                break
            await asyncio.sleep(0.05)
        times = [claims[s][0] - t0 for s in held if claims[s][0] > t0]
        result["crash"] = {
            "orphans": len(held),
            "taken_over": len(times),
            "first_claim_s": round(min(times), 3) if times else None,
            "last_claim_s": round(max(times), 3) if times else None,
            "claimers": len({claims[s][1] for s in held if claims[s][0] > t0}),
        }
        members, tasks = members[1:], tasks[1:]
    for m in members:
        m.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    for key in key_bytes(client, prefix):
        client.delete(getattr(Keys(prefix), key))
    client.close()
    return result


# -- 4. projection ------------------------------------------------------------------------


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares a + b*x."""
    if len(points) == 1:
        x, y = points[0]
        return 0.0, y / x
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def project(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Hosts, Redis and MQTT for ``args.project_streams`` concurrent streams."""
    s = args.project_streams
    load = results["load"]
    sims = [x for x in results["sim"] if "error" not in x]
    per_host = args.host_cores * args.utilisation
    interval = args.ttl / 4
    cpu_figures = {
        "measured here (360p, 3 hashes)": load["cpu_s_per_stream_s"],
        "live benchmark (720p, 3 hashes)": LIVE_CPU_PER_STREAM_S,
    }
    if not sims:
        raise ValueError("no lease-layer run to project the Redis figures from")
    heartbeat = fit([(x["held_per_worker"], x["redis_cpu_us_per_heartbeat"]) for x in sims])
    script = fit([(x["held_per_worker"], x["usec_per_heartbeat"]) for x in sims])
    per_byte = statistics.fmean(x["bytes_per_stream"] for x in sims)
    # Commands other than heartbeats per host process (the blocklist sync), from part 1.
    other_per_process = (load["redis"]["commands_per_s"] - load["redis"]["evalsha_per_s"]) / load[
        "hosts"
    ]
    plans = []
    for name, cpu in cpu_figures.items():
        cores = s * cpu
        hosts = math.ceil(cores / per_host)
        hosts_n1 = hosts + 1  # one host may fail without the others going over target
        processes = hosts_n1 * args.host_cores
        held = s / processes
        capacity = math.ceil(s / ((hosts_n1 - 1) * args.host_cores))
        beats_per_s = processes / interval
        cpu_us = heartbeat[0] + heartbeat[1] * held
        plans.append(
            {
                "cpu_figure": name,
                "cpu_s_per_stream_s": cpu,
                "cores": round(cores, 1),
                "hosts": hosts,
                "hosts_n_plus_1": hosts_n1,
                "processes": processes,
                "streams_per_process": round(held, 1),
                "capacity_needed": capacity,
                "default_capacity_streams": processes * ClusterSettings().capacity,
                "default_capacity_after_loss": (processes - args.host_cores)
                * ClusterSettings().capacity,
                "host_loss_streams": round(s / hosts_n1),
                "heartbeats_per_s": round(beats_per_s, 1),
                "lease_renewals_per_s": round(s / interval),
                "script_us": round(script[0] + script[1] * held, 1),
                "redis_cpu_pct_heartbeats": round(100 * beats_per_s * cpu_us / 1e6, 2),
                "other_commands_per_s": round(other_per_process * processes, 1),
            }
        )
    churn_s = args.broadcast_minutes * 60
    events_stress = load["events_per_stream_s"] * s
    return {
        "streams": s,
        "assumptions": {
            "host_cores": args.host_cores,
            "target_utilisation": args.utilisation,
            "lease_ttl_s": args.ttl,
            "processes_per_host": "one per core",
            "mean_broadcast_minutes": args.broadcast_minutes,
        },
        "heartbeat_cpu_us_fit": [round(v, 3) for v in heartbeat],
        "script_us_fit": [round(v, 3) for v in script],
        "plans": plans,
        "redis_memory_mb": round(per_byte * s / 2**20, 2),
        "registrations_per_s": round(2 * s / churn_s, 2),  # register + unregister
        "mqtt": {
            "status_steady_per_s": 0.0,
            "status_churn_per_s": round(4 * s / churn_s, 1),
            "status_host_loss_burst": 2 * round(s / plans[-1]["hosts_n_plus_1"]),
            "events_stress_per_s": round(events_stress, 1),
        },
    }


# -- output -------------------------------------------------------------------------------


def fmt_s(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(results: dict[str, Any]) -> str:
    args = results["args"]
    m = results["machine"]
    ttl, n, k = args["ttl"], args["streams"], args["hosts"]
    load = results["load"]
    rounds = results["rounds"]
    kills = [r for r in rounds if r["how"] == "kill"]
    terms = [r for r in rounds if r["how"] == "term"]
    target = ttl + 2

    def row(label: str, values: list[float], limit: float | None = None) -> list[Any]:
        p = percentiles(values)
        result = [label, p["count"], p["p50"], p["p95"], p["p99"], p["max"]]
        if limit is None:
            return [*result, "", ""]
        return [
            *result,
            f"p99 ≤ {limit:g}",
            verdict(None if p["p99"] is None else p["p99"] <= limit),
        ]

    def done(rs: list[dict[str, Any]], key: str) -> list[float]:
        return [r[key] for r in rs if r.get(key) is not None]

    def logs(rs: list[dict[str, Any]], key: str) -> list[float]:
        return [r["from_logs"][key] for r in rs if r["from_logs"].get(key) is not None]

    def each(rs: list[dict[str, Any]], key: str) -> list[float]:
        return [v for r in rs for v in r["from_logs"][key]]

    def overlaps(parts: list[dict[str, Any]]) -> list[float]:
        return [v for part in parts for v in part.get("overlap_s", [])]

    restarts = [r["restart"] for r in rounds if "settled_s" in r["restart"]]

    takeover_rows = [
        row(
            "kill -9 → every stream watched once again (polled)", done(kills, "takeover_s"), target
        ),
        row("of which: last lease claimed (run logs)", logs(kills, "last_claim_s"), target),
        row("per stream: lease claimed after the kill (run logs)", each(kills, "claim_s")),
        row("per stream: claim → `watching` (RTMP open)", each(kills, "open_s")),
        row("SIGTERM → survivors watch every stream (polled)", done(terms, "takeover_s")),
        row("of which: leases released (its log, ms resolution)", done(terms, "released_after_s")),
        row("of which: last lease claimed (run logs)", logs(terms, "last_claim_s")),
        row("per stream: claim → `watching` (RTMP open)", each(terms, "open_s")),
        row("SIGTERM → leaving host watches nothing (polled)", done(terms, "leaving_stopped_s")),
        row("SIGTERM → leaving process exited", done(terms, "exited_s")),
        row(
            "per stream: handover overlap, old holder stopped minus new watching (logs)",
            overlaps([r.get("handover", {}) for r in terms]),
        ),
        row(
            "restart → newcomer watches its share (its log)",
            [r["newcomer_watching_s"] for r in restarts if r.get("newcomer_watching_s")],
        ),
        row(
            "per stream: rebalance overlap, old holder stopped minus new watching (logs)",
            overlaps(restarts),
        ),
        row(
            "restart → spread settled, each stream watched once (polled)",
            [r["settled_s"] for r in restarts],
        ),
    ]
    gap_rows = []
    for label, rs in (("kill -9", kills), ("SIGTERM", terms)):
        if not rs:
            continue
        gap_rows.append(
            [
                label,
                len(rs),
                round(statistics.fmean(r["orphans"] for r in rs), 1),
                round(statistics.fmean(r["unwatched_stream_s"] for r in rs), 1),
                max(r["max_doubled"] for r in rs),
                round(statistics.fmean(r["doubled_stream_s"] for r in rs), 1),
                round(
                    statistics.fmean(
                        r["restart"]["unwatched_stream_s"]
                        for r in rs
                        if "settled_s" in r["restart"]
                    ),
                    1,
                ),
                round(
                    statistics.fmean(
                        r["restart"]["doubled_stream_s"] for r in rs if "settled_s" in r["restart"]
                    ),
                    1,
                ),
                max(r["restart"].get("max_doubled", 0) for r in rs),
                Counter(r["exit_code"] for r in rs).most_common(1)[0][0],
            ]
        )
    red = load["redis"]
    top = list(red["commands"].items())[:8]
    sims = [x for x in results["sim"] if "error" not in x]
    failed = [x for x in results["sim"] if "error" in x]
    proj = results["projection"]
    findings = results["log_findings"]
    lines = [
        "## Cluster takeover and scale-out (issue 7)",
        "",
        f"`{results['command']}` ({results['runtime_s'] / 60:.1f} min, commit "
        f"{results['commit']}, {results['date']}). **Machine:** {m['cpu']} (2 cores), "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, redis-server "
        f"{m['redis']} (AOF, `appendfsync {args['appendfsync']}`), "
        f"{m['nginx']} with libnginx-mod-rtmp (HLS off). Everything shares the 2 cores, on "
        "loopback.",
        "",
        f"- **Hosts:** {k} `streamguard run` processes, `processes = 1` each, `[cluster] "
        f"enabled = true`, `lease_ttl_s = {ttl:g}` (the default: a heartbeat every "
        f"{ttl / 4:g} s), default `capacity`. Each registers the same {n} `[[streams]]` at "
        "start; policy `keep_watching_after_kill = true`, `incident_gap_s = 5`.",
        f"- **Streams:** `streamguard replay --copies {n} --loop` of "
        "`streamguard/samples/clips/flagged_360p.flv` (640x360, 30 fps, a keyframe every 2 s). The "
        "Redis blocklist holds `flagged_02` (PDQ, pHash, dHash), shown at 4 s of each 10 s "
        "loop, so every stream gives one event per loop: a stress rate, not a real one.",
        "- **Watched** means `state = watching` in a host's `/streams` (polled every "
        f"{args['poll_s']:g} s from outside). A stream is `watching` once FFmpeg has "
        "opened it (RTMP handshake, play, probe); nginx-rtmp's `wait_key on` starts a new "
        "player at the next keyframe, up to 2 s later.",
        f"- **Rounds:** {len(kills)} kill -9 and {len(terms)} SIGTERM, rotating the victim, "
        "each after the spread has settled (every stream watched once, 10 per host) plus a "
        f"random 0 to {ttl / 4:g} s, so the kill falls at a random phase of the heartbeats. "
        "The victim is then started again under a new worker id (as a replaced pod) and the "
        "next round waits until it has its share.",
        "",
        f"### Takeover ({len(kills)} kill -9, {len(terms)} SIGTERM rounds; seconds)",
        "",
        *table(["measurement", "n", "p50", "p95", "p99", "max", "target", "result"], takeover_rows),
        "",
        *table(
            [
                "rounds",
                "n",
                "streams moved",
                "unwatched stream-s per round",
                "most streams watched twice in a poll",
                "stream-s watched twice per round (handover overlap)",
                "restart: unwatched stream-s",
                "restart: stream-s watched twice",
                "restart: most watched twice",
                "victim's exit code",
            ],
            gap_rows,
        ),
        "",
        f"The target is p99 ≤ lease TTL + 2 s = {target:g} s. With {len(kills)} rounds, "
        "p95 and p99 are interpolated between the largest values: they are close to the "
        "maximum, not a tail estimate.",
        "",
        f"### Load: {n} streams on {k} hosts, {load['window_s']:.0f} s window",
        "",
        *table(
            ["measurement", "value"],
            [
                ["`run` CPU s per stream-second (all hosts)", load["cpu_s_per_stream_s"]],
                ["`run` cores, all hosts", load["run_cores"]],
                [
                    "publisher / nginx cores",
                    " / ".join(str(v) for v in load["other_cores"].values()),
                ],
                ["machine busy %", load["machine_busy_pct"]],
                ["Redis commands/s sent by the hosts", red["commands_per_s"]],
                ["of which EVALSHA (heartbeats)/s", red["evalsha_per_s"]],
                ["commands/s run inside the heartbeat script", red["script_commands_per_s"]],
                [
                    "Redis CPU s/s (INFO used_cpu) / (from /proc)",
                    f"{red['cpu_s_per_s_info']} / {red['cpu_s_per_s_proc']}",
                ],
                ["Redis used_memory MB (blocklist included)", red["used_memory_mb"]],
                ["cluster keys, bytes (MEMORY USAGE)", sum(red["cluster_key_bytes"].values())],
                [
                    "events / stream-second (stress: every loop flagged)",
                    load["events_per_stream_s"],
                ],
                [
                    "connects / reconnects in the window",
                    f"{load['streams_delta'].get('connects', 0)}"
                    f" / {load['streams_delta'].get('reconnects', 0)}",
                ],
            ],
        ),
        "",
        *table(
            ["Redis command", "calls/s", "µs per call"],
            [[f"`{name}`", v["per_s"], v["usec_per_call"]] for name, v in top],
        ),
        "",
        "### The lease layer at scale (no media)",
        "",
        "W `ClusterMember` objects (the shipped heartbeat code, `beat()` and its Lua script) "
        "in the benchmark's own process, on the same redis-server, with S registrations "
        "and no streams opened; they join over one heartbeat interval and then beat every "
        f"{ttl / 4:g} s in real time. Capacity is twice the fair share. Redis CPU is INFO "
        "`used_cpu_*` over the window (the script, the protocol and the AOF); the round "
        "trip is timed in the benchmark's event loop, which also runs the other members.",
        "",
        *table(
            [
                "S / W",
                "leases per member",
                "all claimed and balanced (s)",
                "EVALSHA/s",
                "script µs (commandstats)",
                "Redis CPU µs per heartbeat",
                "Redis CPU %",
                "round trip p50 / p99 (ms)",
                "Redis bytes per stream",
            ],
            [
                [
                    f"{x['streams']:,} / {x['workers']}",
                    x["held_per_worker"],
                    x["all_claimed_balanced_s"],
                    x["evalsha_per_s"],
                    x["usec_per_heartbeat"],
                    x["redis_cpu_us_per_heartbeat"],
                    round(100 * x["redis_cpu_s_per_s"], 2),
                    f"{x['heartbeat_round_trip_ms']['p50']} / "
                    f"{x['heartbeat_round_trip_ms']['p99']}",
                    x["bytes_per_stream"],
                ]
                for x in sims
            ],
        ),
    ]
    for x in failed:
        lines += ["", f"W = {x['workers']}: not measured: {x['error']}."]
    crash = next((x["crash"] for x in sims if "crash" in x), None)
    if crash:
        lines += [
            "",
            f"One member of the first configuration then stopped beating without releasing "
            f"(a crash): its {crash['orphans']} leases were claimed by {crash['claimers']} "
            f"others between {fmt_s(crash['first_claim_s'])} and "
            f"{fmt_s(crash['last_claim_s'])} s after ({crash['taken_over']} of "
            f"{crash['orphans']} taken over).",
        ]
    a = proj["assumptions"]
    lines += [
        "",
        f"### Projection to {proj['streams']:,} concurrent streams (on paper)",
        "",
        f"Assumptions: {a['host_cores']}-core hosts at {a['target_utilisation']:.0%} target "
        f"utilisation, one worker process per core, one spare host (N+1) so a host loss "
        f"stays under target, `lease_ttl_s = {a['lease_ttl_s']:g}`; media-server, "
        "network and decode costs scale like this benchmark's streams; the mean broadcast "
        f"lasts {a['mean_broadcast_minutes']} min (for churn).",
        "",
        *table(
            [
                "CPU figure",
                "CPU s per stream-s",
                "cores",
                "hosts (N+1)",
                "worker processes",
                "streams per process",
                "capacity needed",
                f"default `capacity = {ClusterSettings().capacity}` holds: all / after a host loss",
                "heartbeats/s",
                "lease renewals/s",
                "script µs",
                "Redis CPU % for heartbeats",
                "other Redis commands/s",
            ],
            [
                [
                    p["cpu_figure"],
                    p["cpu_s_per_stream_s"],
                    p["cores"],
                    f"{p['hosts']} ({p['hosts_n_plus_1']})",
                    p["processes"],
                    p["streams_per_process"],
                    p["capacity_needed"],
                    f"{p['default_capacity_streams']:,} / {p['default_capacity_after_loss']:,}",
                    p["heartbeats_per_s"],
                    p["lease_renewals_per_s"],
                    p["script_us"],
                    p["redis_cpu_pct_heartbeats"],
                    p["other_commands_per_s"],
                ]
                for p in proj["plans"]
            ],
        ),
        "",
        f"Redis memory for the cluster keys: {proj['redis_memory_mb']} MB. Registrations: "
        f"{proj['registrations_per_s']} scripts/s. MQTT: no status messages while nothing "
        f"changes; {proj['mqtt']['status_churn_per_s']} retained status messages/s from "
        f"broadcast churn; {proj['mqtt']['status_host_loss_burst']:,} in the heartbeat "
        f"interval after a host loss; events {proj['mqtt']['events_stress_per_s']:,}/s only "
        "at this benchmark's stress rate.",
        "",
        f"Events: {results['events']['total']} received, "
        f"{results['events'].get('decisions_logged', '-')} decisions logged, "
        f"{results['events']['duplicate_ids']} event ids seen twice; pairs from two "
        "workers within 3 s (a handover overlap): "
        f"{results['events'].get('twins', {}).get('pairs', '-')}, of which "
        f"{results['events'].get('twins', {}).get('same_event_id', '-')} share the event id.",
        "",
        "### Warnings and errors in the run logs",
        "",
    ]
    if findings["counts"]:
        lines += table(
            ["count", "message (numbers and quoted ids masked)"],
            [[c, f"`{shape}`"] for shape, c in findings["counts"].items()],
        )
    else:
        lines.append("None.")
    lines.append(f"\nTracebacks: {findings['tracebacks']}.")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ttl = results["args"]["ttl"]
    rounds = results["rounds"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for r in rounds:
        times = [s[0] for s in r["timeline"]]
        unwatched = [s[1] for s in r["timeline"]]
        color = "tab:red" if r["how"] == "kill" else "tab:blue"
        left.step(times, unwatched, where="post", color=color, alpha=0.6, linewidth=1)
        if r["how"] == "term":  # the handover overlap: streams watched by two hosts
            doubled = [s[2] for s in r["timeline"]]
            left.step(times, doubled, where="post", color=color, alpha=0.6, linestyle="--")
    left.axvline(ttl, color="grey", linestyle="--", linewidth=1)
    left.axvline(ttl + 2, color="black", linestyle=":", linewidth=1)
    for ax in (left, right):
        ax.text(ttl, 1.01, "TTL", color="grey", transform=ax.get_xaxis_transform(), ha="center")
        ax.text(ttl + 2, 1.01, "target", transform=ax.get_xaxis_transform(), ha="center")
    left.plot([], [], color="tab:red", label="kill -9")
    left.plot([], [], color="tab:blue", label="SIGTERM")
    left.plot([], [], color="tab:blue", linestyle="--", label="SIGTERM: watched twice")
    left.set_xlabel("seconds after the signal")
    left.set_ylabel("streams unwatched (solid) / watched twice (dashed)")
    left.set_title("Takeover, every round (polled /streams)", pad=16)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize="small")
    kills = [r for r in rounds if r["how"] == "kill"]
    claims = sorted(v for r in kills for v in r["from_logs"]["claim_s"])
    watched = sorted(
        c + o
        for r in kills
        for c, o in zip(r["from_logs"]["claim_s"], r["from_logs"]["open_s"], strict=True)
    )
    for values, label in ((claims, "lease claimed"), (watched, "watching")):
        if values:
            ys = [(i + 1) / len(values) for i in range(len(values))]
            right.step(values, ys, where="post", label=label)
    right.axvline(ttl, color="grey", linestyle="--", linewidth=1)
    right.axvline(ttl + 2, color="black", linestyle=":", linewidth=1)
    right.set_xlabel("seconds after kill -9")
    right.set_ylabel("share of the dead host's streams")
    right.set_title("Per stream, from the run logs (all kill -9 rounds)", pad=16)
    right.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


# -- main ---------------------------------------------------------------------------------


def save_so_far(out: Path, results: dict[str, Any], started_at: float) -> None:
    """Write what there is so far (a failure later keeps the figures measured)."""
    results["runtime_s"] = round(time.monotonic() - started_at, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3, metavar="K")
    parser.add_argument("--streams", type=int, default=30, metavar="N")
    parser.add_argument("--ttl", type=float, default=TTL_S, help="lease_ttl_s (the default)")
    parser.add_argument("--rounds", type=int, default=8, help="kill -9 rounds")
    parser.add_argument("--term-rounds", type=int, default=3, help="SIGTERM rounds")
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--poll-s", type=float, default=0.2, help="/streams poll interval")
    parser.add_argument("--sim-streams", type=int, default=10_000)
    parser.add_argument(
        "--sim-workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100, 25],
        help="members per lease-layer run, comma-separated (default 100,25; 0 skips)",
    )
    parser.add_argument("--sim-seconds", type=float, default=20)
    parser.add_argument("--appendfsync", default="everysec", help="Redis AOF fsync policy")
    parser.add_argument("--project-streams", type=int, default=10_000)
    parser.add_argument("--host-cores", type=int, default=8)
    parser.add_argument("--utilisation", type=float, default=0.7)
    parser.add_argument("--broadcast-minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", type=Path, help="PNG of the takeovers")
    args = parse(parser, SMOKE, "cluster")
    if args.render:
        results = saved(args.out, "cluster")
        results["projection"] = project(results, argparse.Namespace(**results["args"]))
        publish(args, "cluster", results, markdown, plot)
        return
    work = (args.out / "cluster").resolve()  # logs, nginx, Redis
    shutil.rmtree(work, ignore_errors=True)  # the last run's logs, nginx root and Redis
    work.mkdir(parents=True)
    os.environ["STREAMGUARD_LOG_FORMAT"] = "json"  # the run processes' logs, with ms times
    rng = random.Random(args.seed)
    started_at = time.monotonic()
    results = {**header(args, "pyav", "nginx", "redis"), "commit": commit()}
    server = RedisServer(work / "redis", appendfsync=args.appendfsync)
    server.start()
    hosts: Hosts | None = None
    try:
        added = subprocess.run(
            [*ADD_IMAGE, str(FLAGGED), "--category", "test", "--redis", server.url],
            capture_output=True,
            text=True,
        )
        if added.returncode != 0:
            raise SystemExit(f"blocklist add-image failed: {added.stderr}")
        with ExitStack() as stack:
            nginx: NginxRtmp = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False))
            command = [STREAMGUARD, "replay", str(CLIP), nginx.rtmp_url("s{n}")]
            command += ["--copies", str(args.streams), "--loop"]
            replay = stack.enter_context(
                started(command, work / "replay.log", stop_signal=signal.SIGTERM)
            )
            names = {f"s{n}" for n in range(args.streams)}
            wait_until(lambda: names <= nginx.published(), 60, "all copies published")
            urls = {name: nginx.rtmp_url(name) for name in sorted(names)}
            hosts = Hosts(work, server.url, urls, args)
            for n in range(args.hosts):
                hosts.start(f"h{n}")
            t = now_s()
            hosts.settle(120)
            results["first_settle_s"] = round(now_s() - t, 1)
            print(f"{args.streams} streams watched once on {args.hosts} hosts")
            others = {"publisher": replay.pid, "nginx": nginx.process.pid}
            results["load"] = bench_load(hosts, server, others, args.load_seconds)
            print(json.dumps(results["load"], indent=1))
            results["rounds"] = bench_takeover(hosts, rng)
            t = now_s()
            results["exit_codes_at_end"] = hosts.stop_all()  # one after another, SIGTERM
            results["stop_all_s"] = round(now_s() - t, 1)
            # After the stop: events decided during the last handovers count too.
            events = hosts.all_events()
            ids = Counter(e["event_id"] for e in events)
            matched = sum(
                1 for path in hosts.logs for _, _, m in log_records(path) if MATCHED.search(m)
            )
            results["events"] = {
                "total": len(events),
                "decisions_logged": matched,  # one log line per published event
                "duplicate_ids": sum(1 for n in ids.values() if n > 1),
                "twins": twin_events(events),
            }
        results["log_findings"] = log_findings(hosts.logs)
        save_so_far(args.out, results, started_at)
        results["sim"] = []
        for number, workers in enumerate(w for w in args.sim_workers if w):
            try:
                sim = asyncio.run(
                    simulate(
                        server.url,
                        args.sim_streams,
                        workers,
                        args.ttl,
                        args.sim_seconds,
                        crash=number == 0,
                    )
                )
            except (TimeoutError, redis.RedisError) as exc:
                if args.smoke:
                    raise
                sim = {"workers": workers, "error": f"{exc.__class__.__name__}: {exc}"}
            print(json.dumps(sim, indent=1))
            results["sim"].append(sim)
    finally:
        if hosts is not None:
            hosts.stop_all()
        server.stop()
        save_so_far(args.out, results, started_at)
    results["projection"] = project(results, args)
    results["runtime_s"] = round(time.monotonic() - started_at, 1)
    publish(args, "cluster", results, markdown, plot)


if __name__ == "__main__":
    main()
