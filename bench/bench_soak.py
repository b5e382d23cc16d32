"""Soak (issues 9 and 19): ≥ 100 streams for 20 minutes to hours, streams joining and leaving.

What only a long run shows: slow leaks (memory, threads, file descriptors), events lost
under sustained load and churn, and latency that creeps up. Everything runs as real
processes on this machine, on loopback: redis-server (the blocklist, imported from
streamguard/samples/blocklist.csv, and the cluster's stream registry), mosquitto, Debian nginx with
the RTMP module (HLS off), `streamguard replay --loop --keyframe-log` publishers,
`streamguard run` (cluster mode, one worker process per core, kill events over MQTT
through its outbox) and a platform subscriber (`mosquitto_sub`, persistent session,
QoS 1) that records every kill event it receives.

- Load: N streams (default 120). As in `bench_live.py --subscribers`, a few published
  copies are each watched by many streams (nginx fans a copy out to separate RTMP
  connections), so the load generator stays light on the 2 cores: copies of
  streamguard/samples/clips/flagged_720p.mp4 (flagged picture on the keyframe at 4 s of every 10 s
  loop: one kill per stream every 10 s) and a share of clean_720p.mp4 streams; with
  ``--clips 360p``, their 640x360 twins (same GOP and pictures, a quarter of the pixels to
  decode and scale), for a machine that also runs other work.
- Churn: every few seconds, some random streams are unregistered and as many new ones
  (new ids) registered, through the cluster registry in Redis (the code behind
  `streamguard streams add/remove`), so about N stay registered.
- Sampling, every few seconds: the `run` process tree (parent and workers): RSS, PSS,
  the RSS split by mapping kind from /proc/PID/smaps (brk heap, anonymous mappings:
  the native allocators' memory, numpy's and FFmpeg's buffers among it; file-backed;
  stack), threads, open file descriptors, CPU; /streams (streams watching) and /metrics
  (outbox).
- Verdicts, over the window after the warm-up: RSS, threads and fds of the last W
  minutes (median) within 5 % of the first W minutes; RSS growth over the last
  ``--tail-minutes`` (90: the last 90 of a 2-hour soak) ≤ 2 %, by a Theil-Sen line
  (robust to outlying samples, see tail_growth); every kill the run log shows as
  decided (its event_id) received by the subscriber, and the outbox empty at the end;
  latency (flagged keyframe sent by the publisher -> kill event received) p99 of the
  last W minutes ≤ max(1.5 x, +0.1 s over) that of the first, and ≤ 1.5 s overall.

Writes bench/out/soak.json and bench/out/soak.md; ``--plot PNG`` draws the samples.
"""

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from bench import parse
from bench.bench_cluster import STOPPED, WATCHING, fit, log_findings, log_records
from bench.bench_events import KILLS, kill_events, load, sent_at
from bench.bench_live import BLOCKLIST, copy_of, epoch, read_send_log, replaying
from bench.processes import (
    MAPPING_KINDS,
    descendants,
    machine_busy,
    mappings_mb,
    process_memory_mb,
    tree_cpu_s,
    tree_memory_mb,
    wait_until,
)
from bench.progress import measure_window
from bench.report import (
    commit,
    fmt,
    invocation,
    machine,
    percentiles,
    publish,
    saved,
    table,
    verdict,
)
from streamguard.config import parse_stream
from streamguard.config.sampling import MODES, Sampling
from streamguard.events.outbox import Outbox
from streamguard.infra.redis import RedisSettings, connect
from streamguard.infra.registry import Registry
from streamguard.samples import SAMPLES_DIR
from tests.support.mosquitto import mosquitto_broker
from tests.support.nginx import nginx_rtmp_server
from tests.support.redis import RedisServer, import_blocklist
from tests.support.service import DECISION, Service
from tests.support.subscriber import Subscriber

CLIPS = SAMPLES_DIR / "clips"
# Stream kinds: id prefix -> (clip, nginx name of its published copies). A stream id is
# KIND-COPY-SERIAL ("f-3-17": the 17th stream registered, watching flagged copy 3), so
# bench_live.copy_of() gives the copy it watches.
FLAGGED, CLEAN = "f", "c"
KINDS = {FLAGGED: ("flagged", "lat"), CLEAN: ("clean", "clean")}  # kind -> (clip, copy name)
CLIP_FILES = {"720p": "{}_720p.mp4", "360p": "{}_360p.flv"}  # --clips -> file of a clip
CLIP_GOP_S = 2  # the sample clips' keyframe interval; the flagged picture is on the one at 4 s


def clip_of(kind: str, clips: str) -> Path:
    """The clip that the copies of ``kind`` publish, at the ``--clips`` size."""
    return CLIPS / CLIP_FILES[clips].format(KINDS[kind][0])


def published_clip(kind: str, args: argparse.Namespace, work: Path) -> Path:
    """``clip_of``, re-encoded with a keyframe every ``args.gop_s`` (4: at 0, 4 and 8 s of
    each 10 s loop, the flagged one kept) when that is not the sample clips' own: fewer
    keyframes to decode and hash per stream-second, the same packets to read."""
    clip = clip_of(kind, args.clips)
    if args.gop_s == CLIP_GOP_S:
        return clip
    (work / "clips").mkdir(exist_ok=True)
    target = work / "clips" / f"{clip.stem}_gop{args.gop_s}.flv"
    gop = str(30 * args.gop_s)
    # The ffmpeg command, not tests/support/reencode.py: its GOP options do not reach
    # libx264 (keyframes stay 2 s apart).
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-i", str(clip), "-an", "-c:v", "libx264"),
            *("-preset", "veryfast", "-crf", "23", "-g", gop, "-keyint_min", gop),
            *("-sc_threshold", "0", "-bf", "0", str(target)),
        ],
        check=True,
    )
    return target


PLATFORM = "soak-platform"  # the subscriber's client id: a persistent session
PROBE = KILLS + "probe"
SOURCE = "soak"  # the registrations' source field
SECRET = "soak-control-secret"
GROWTH_LIMIT = 0.05
TAIL_GROWTH_LIMIT = 0.02  # RSS over the soak's last --tail-minutes (issue 19: 90 of 120)
ENDS_MINUTES = 5.0  # the medians compared at either end of the tail, for reference
# Medians per window; RSS, threads and fds are checked, the others reported.
MAPPINGS = tuple(f"{kind}_mb" for kind in MAPPING_KINDS)
MAPPING_LABELS = ("heap", "anon", "file", "main stack", "other")
MEASURES = ("rss_mb", "pss_mb", "parent_rss_mb", "threads", "fds", *MAPPINGS)
CHECKED = ("rss_mb", "threads", "fds")
RAMP_STEP_S = 5.0  # --ramp-s: a batch of the first streams registered this often
SETTLE_S = 10.0  # streams that joined or left this close to the run's stop are not timed
LATENCY_P99_LIMIT_S = 1.5
LATENCY_HELD = (1.5, 0.1)  # last p99 ≤ max(1.5 x first p99, first p99 + 0.1 s)
# 6 s of soak after 3 s of warm-up, a churn round every 2 s, in-process `run`.
SMOKE = {
    "streams": 2,
    "minutes": 0.1,
    "warmup_minutes": 0.05,
    "sample_every_s": 1,
    "churn_every_s": 2,
    "churn_count": 1,
    "publishers": 1,
    "clean_publishers": 1,
    "clean_share": 0.5,
    "processes": 1,
    "drain_timeout_s": 20,
}
RUN_CONFIG = """\
processes = {processes}
state_dir = "{state}"
[redis]
url = "{redis}"
[mqtt]
url = "{mqtt}"
[cluster]
enabled = true
[control]
secret_file = "{secret}"
# Every loop of the clip shows the flagged picture: keep watching after a kill, one
# incident (one kill event) per loop.
[policy]
keep_watching_after_kill = true
incident_gap_s = 5
[sampling]
mode = "{sampling}"
"""


# -- the registered streams ---------------------------------------------------------------


@dataclass
class Fleet:
    """The streams registered in the cluster's registry, as this benchmark changes them."""

    redis_url: str
    urls: dict[str, list[str]]  # kind -> RTMP URL of each published copy
    rng: random.Random
    streams: dict[str, str] = field(default_factory=dict)  # registered now: id -> URL
    added_at: dict[str, float] = field(default_factory=dict)  # id -> time.time()
    removed_at: dict[str, float] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    serial: int = 0

    def url_of(self, stream_id: str) -> str:
        return self.urls[stream_id.split("-")[0]][copy_of(stream_id)]

    def new_ids(self, kinds: list[str], staying: set[str]) -> list[str]:
        """Fresh ids of ``kinds``, each on the copy of its kind that the fewest of
        ``staying`` and the ids made so far watch (the fan-out stays even)."""
        watchers = Counter((i.split("-")[0], copy_of(i)) for i in staying)
        ids = []
        for kind in kinds:
            _, copy = min((watchers[kind, c], c) for c in range(len(self.urls[kind])))
            watchers[kind, copy] += 1
            self.serial += 1
            ids.append(f"{kind}-{copy}-{self.serial}")
        return ids

    async def _apply(self, add: list[str], remove: list[str]) -> None:
        settings = RedisSettings(url=self.redis_url)
        client = connect(settings)
        registry = Registry(client, settings.prefix)
        try:
            for stream_id in remove:
                await registry.unregister(stream_id)
            for stream_id in add:
                stream = parse_stream("soak", stream_id, self.url_of(stream_id))
                await registry.register(stream, SOURCE)
        finally:
            await client.aclose()

    def change(self, add: list[str], remove: list[str]) -> None:
        """Unregister ``remove``, then register ``add``."""
        at = time.time()
        asyncio.run(self._apply(add, remove))
        for stream_id in remove:
            del self.streams[stream_id]
            self.removed_at[stream_id] = at
        for stream_id in add:
            self.streams[stream_id] = self.url_of(stream_id)
            self.added_at[stream_id] = at

    def populate(self, count: int, clean: int, ramp_s: float = 0) -> None:
        """The first ``count`` streams, ``clean`` of them on clean copies: at once, or in
        a batch every RAMP_STEP_S over ``ramp_s``."""
        ids = self.new_ids([CLEAN] * clean + [FLAGGED] * (count - clean), set())
        steps = max(1, round(ramp_s / RAMP_STEP_S))
        for step in range(steps):
            self.change(ids[step * len(ids) // steps : (step + 1) * len(ids) // steps], [])
            if step < steps - 1:
                time.sleep(ramp_s / steps)

    def churn(self, count: int) -> None:
        """``count`` random streams leave; as many new ones of the same kinds join."""
        leaving = self.rng.sample(sorted(self.streams), min(count, len(self.streams)))
        staying = set(self.streams) - set(leaving)
        joining = self.new_ids([i.split("-")[0] for i in leaving], staying)
        round_ = {"at": round(time.time(), 3), "left": leaving, "joined": joining}
        try:
            self.change(joining, leaving)
        except (RedisError, OSError) as exc:
            round_["error"] = f"{exc.__class__.__name__}: {exc}"
        self.rounds.append(round_)


# -- sampling -----------------------------------------------------------------------------


def tree_usage(root: int) -> dict[str, float]:
    """Processes, threads, open file descriptors, RSS and PSS of ``root``'s process tree,
    its RSS split by mapping kind (bench.processes.MAPPING_KINDS), and the RSS of the root
    (`run`'s parent process) alone."""
    usage = Counter({"processes": 0, "threads": 0, "fds": 0})
    for pid in descendants(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # exited meanwhile
        found = re.search(r"^Threads:\s*(\d+)", status, re.MULTILINE)
        memory = process_memory_mb(pid)
        usage.update(memory)
        usage.update(mappings_mb(pid))
        usage.update(processes=1, threads=int(found.group(1)) if found else 0, fds=open_fds)
        if pid == root:
            usage["parent_rss_mb"] = memory["rss_mb"]
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in usage.items()}


def total(metrics: dict[str, float], name: str) -> float:
    """The sum of a metric's samples over all its labels."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


class Monitor:
    """In a thread until stopped: a sample every ``args.sample_every_s``, a churn round
    every ``args.churn_every_s``."""

    def __init__(
        self,
        service: Service,
        fleet: Fleet,
        subscriber: Subscriber,
        others: dict[str, int],
        args: argparse.Namespace,
    ) -> None:
        self.service, self.fleet, self.subscriber, self.others = service, fleet, subscriber, others
        self.args = args
        self.samples: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()
        self._last: tuple[float, float, tuple[float, float]] | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(60)

    def _loop(self) -> None:
        now = time.monotonic()
        next_sample, next_churn = now, now + self.args.churn_every_s
        while not self._halt.is_set():
            now = time.monotonic()
            try:
                if now >= next_sample:
                    next_sample = max(next_sample + self.args.sample_every_s, now)
                    self.samples.append(self.sample())
                if now >= next_churn and self.args.churn_count:
                    next_churn = max(next_churn + self.args.churn_every_s, now)
                    self.fleet.churn(self.args.churn_count)
            except Exception as exc:  # a bug here must not end the sampling silently
                self.errors[f"monitor: {exc.__class__.__name__}: {exc}"[:200]] += 1
            self._halt.wait(max(0.0, min(next_sample, next_churn) - time.monotonic()))

    def sample(self) -> dict[str, Any]:
        """One row: the `run` tree, what it reports, what the subscriber got."""
        root = self.service.process.pid
        at, cpu, busy = time.time(), tree_cpu_s(root), machine_busy()
        row: dict[str, Any] = {"at": round(at, 3), **tree_usage(root)}
        if self._last is not None:
            at0, cpu0, busy0 = self._last
            row["cpu_cores"] = round((cpu - cpu0) / (at - at0), 3)
            row["machine_busy_pct"] = round(100 * (busy[0] - busy0[0]) / (busy[1] - busy0[1]), 1)
        self._last = (at, cpu, busy)
        row["load_1m"] = os.getloadavg()[0]
        row["registered"] = len(self.fleet.streams)
        try:
            states = self.service.get("/streams")
            watching = {s["stream_id"] for s in states if s["state"] == "watching"}
            row["watching"] = len(watching)
            row["watching_flagged"] = sum(1 for i in watching if i.startswith(FLAGGED + "-"))
            row["listed"] = len(states)  # a stream in a handover is listed twice
        except (OSError, ValueError) as exc:
            self.errors[f"/streams: {exc.__class__.__name__}"] += 1
        try:
            metrics = self.service.metrics()
            row["outbox_events"] = metrics.get("streamguard_outbox_events")
            for key, name in (
                ("decisions", "streamguard_decisions_total"),
                ("published", "streamguard_events_published_total"),
                ("frames_dropped", "streamguard_frames_dropped_total"),
                ("reconnects", "streamguard_reconnects_total"),
                ("internal_errors", "streamguard_internal_errors_total"),
                ("worker_restarts", "streamguard_worker_restarts_total"),
            ):
                row[key] = total(metrics, name)
        except (OSError, ValueError) as exc:
            self.errors[f"/metrics: {exc.__class__.__name__}"] += 1
        row["received"] = len(self.subscriber.messages)
        row["others"] = {
            name: {"rss_mb": round(tree_memory_mb(pid)["rss_mb"], 1), "cpu_s": tree_cpu_s(pid)}
            for name, pid in self.others.items()
        }
        return row


# -- the run ------------------------------------------------------------------------------


def watching_ids(service: Service) -> set[str]:
    return {s["stream_id"] for s in service.get("/streams") if s["state"] == "watching"}


def decisions(log: Path) -> list[tuple[float, str]]:
    """(time, event_id) of each kill decision in the JSON run log."""
    found = []
    for when, _, message in log_records(log):
        if match := DECISION.search(message):
            found.append((when, match["event_id"]))
    return found


def received_ids(subscriber: Subscriber) -> set[str]:
    return {event["event_id"] for _, event in kill_events(subscriber)}


def outbox_files(state: Path) -> dict[str, int]:
    """Events waiting in each outbox file (the run stopped)."""
    counts = {}
    for path in sorted(state.glob("outbox-*.sqlite")):
        outbox = Outbox(path)
        counts[path.name] = len(outbox)
        outbox.close()
    return counts


def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start everything, warm up, soak, drain; the raw record of what happened."""
    for stale in ("redis", "mosquitto", "nginx", "state", "flagged", "clean", "clips", "run.log"):
        path = work / stale
        if path.is_dir():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {}
    with ExitStack() as stack:
        redis = RedisServer(work / "redis")
        redis.start()
        stack.callback(redis.stop)
        import_blocklist(redis, args.blocklist)
        broker = stack.enter_context(mosquitto_broker(work / "mosquitto"))
        subscriber = Subscriber(broker.port, KILLS + "#", client_id=PLATFORM)
        stack.callback(subscriber.close)
        wait_until(lambda: subscriber.probe(PROBE), 10, "the subscriber subscribed", 0.1)
        subscriber.messages.clear()  # the probes
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False))
        copies = {FLAGGED: args.publishers, CLEAN: args.clean_publishers if args.clean else 0}
        publishers, send_logs = {}, {}
        for kind, count in copies.items():
            if count:
                name = KINDS[kind][1]
                process, send_logs[kind] = stack.enter_context(
                    replaying(
                        nginx, count, work / name, clip=published_clip(kind, args, work), name=name
                    )
                )
                publishers[kind] = process.pid
        names = {f"{KINDS[kind][1]}-{n}" for kind, count in copies.items() for n in range(count)}
        wait_until(lambda: names <= nginx.published(), 30 + len(names), "all copies published", 1)
        urls = {
            kind: [nginx.rtmp_url(f"{KINDS[kind][1]}-{n}") for n in range(count)]
            for kind, count in copies.items()
        }
        fleet = Fleet(redis.url, urls, random.Random(args.seed))
        if not args.ramp_s:
            fleet.populate(args.streams, args.clean)
        (work / "control-secret").write_text(SECRET)  # the control topic is followed too
        (work / "streamguard.toml").write_text(
            RUN_CONFIG.format(
                processes=args.processes,
                sampling=args.sampling,
                state=work / "state",
                redis=redis.url,
                mqtt=broker.url(),
                secret=work / "control-secret",
            )
        )
        if args.malloc_arena_max:  # for `run` alone: the other processes are up already
            os.environ["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
        run_from = time.time()
        service = Service(
            ["--config", str(work / "streamguard.toml")], work / "run.log", start_timeout_s=60
        )
        stack.callback(service.stop)
        if args.ramp_s:
            fleet.populate(args.streams, args.clean, args.ramp_s)
        raw["all_watching_s"] = round(
            wait_until(
                lambda: len(watching_ids(service)) >= args.streams,
                60 + 0.3 * args.streams,
                "all streams watching",
                1,
            ),
            1,
        )
        print(f"{args.streams} streams watching after {raw['all_watching_s']} s")
        others = {
            "nginx": nginx.process.pid,
            "mosquitto": broker.process.pid,
            "redis": redis.process.pid,
            **{f"replay {KINDS[kind][1]}": pid for kind, pid in publishers.items()},
        }
        monitor = Monitor(service, fleet, subscriber, others, args)
        monitor.start()
        stack.callback(monitor.stop)
        received = lambda: len(subscriber.messages)  # noqa: E731
        measure_window(args.warmup_minutes * 60, "warm-up", received)
        soak_from = time.time()
        measure_window(args.minutes * 60, "soak", received)
        soak_until = time.time()
        monitor.stop()
        # Every kill decided so far reaches the subscriber, and the outbox empties.
        drain_from = time.time()

        def drained() -> bool:
            decided = {event_id for _, event_id in decisions(service.log_path)}
            outbox = service.metrics().get("streamguard_outbox_events")
            return outbox == 0 and decided <= received_ids(subscriber)

        try:
            wait_until(drained, args.drain_timeout_s, "every decided kill received", 1)
        except TimeoutError as exc:
            print(f"  {exc}")
        raw["drain_s"] = round(time.time() - drain_from, 1)
        raw["outbox_events_at_end"] = service.metrics().get("streamguard_outbox_events")
        raw["run_stop_at"] = time.time()
        raw["run_exit_code"] = service.stop()
        time.sleep(2)  # events the stopping run published on its way out arrive
        raw["outbox_files_after_stop"] = outbox_files(work / "state")
    raw.update(
        run_from=run_from,
        soak_from=soak_from,
        soak_until=soak_until,
        samples=monitor.samples,
        monitor_errors=dict(monitor.errors),
        fleet=fleet,
        subscriber=subscriber,
        send_log=send_logs[FLAGGED],
        run_log=service.log_path,
    )
    return raw


# -- analysis -----------------------------------------------------------------------------


def churn_latency(log: Path, fleet: Fleet, since: float, until: float) -> dict[str, Any]:
    """From registering to the "watching" line of each stream that joined in [since,
    until], and from unregistering to the "stopped" line of each that left in it (later
    ones had no time to, before the run stopped)."""
    watching: dict[str, float] = {}
    stopped: dict[str, float] = {}
    joined = {i: at for i, at in fleet.added_at.items() if since <= at <= until}
    left = {i: at for i, at in fleet.removed_at.items() if since <= at <= until}
    for when, _, message in log_records(log):
        if (match := WATCHING.search(message)) and joined.get(match[1], when + 1) <= when:
            watching.setdefault(match[1], when - joined[match[1]])
        if (match := STOPPED.search(message)) and left.get(match[1], when + 1) <= when:
            stopped.setdefault(match[1], when - left[match[1]])
    return {
        "joins": len(fleet.added_at) - sum(1 for at in fleet.added_at.values() if at < since),
        "leaves": len(fleet.removed_at),
        "join_to_watching_s": percentiles(list(watching.values())),
        "joins_never_watching": len(joined.keys() - watching.keys()),
        "leave_to_stopped_s": percentiles(list(stopped.values())),
        "leaves_never_stopped": len(left.keys() - stopped.keys()),
    }


def events_of(raw: dict[str, Any]) -> dict[str, Any]:
    """Each flagged kill received (first copy), joined to the keyframe the publisher sent:
    [sent_at, sent -> received, sent -> decided]; kills on clean streams; unmatched."""
    sent = read_send_log(raw["send_log"])
    joined, clean, unmatched = [], [], 0
    for message, event in kill_events(raw["subscriber"]):
        if not event["stream_id"].startswith(FLAGGED + "-"):
            clean.append(event["stream_id"])
            continue
        at = sent_at(sent, event)
        if at is None:
            unmatched += 1
            continue
        decided = epoch(event["detected_at"])
        joined.append([round(at, 3), round(message.at - at, 4), round(decided - at, 4)])
    messages = [m for m in raw["subscriber"].messages if m.topic.startswith(KILLS)]
    return {
        "latency": sorted(joined),
        "clean_kills": clean,
        "unmatched": unmatched,
        "received_messages": len(messages),
        "received_at": [round(m.at, 3) for m in messages],
    }


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return None
    middle = round(statistics.median(values), 2)
    return int(middle) if float(middle).is_integer() else middle


def windows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The soak cut into equal windows of about ``window_minutes``: medians of the
    samples, mean CPU, churn, kills and latency of the keyframes sent in each."""
    start, end = results["soak_from"], results["soak_until"]
    count = max(1, round((end - start) / (60 * results["settings"]["window_minutes"])))
    step = (end - start) / count
    found = []
    for k in range(count):
        lo, hi = start + k * step, start + (k + 1) * step
        rows = [s for s in results["samples"] if lo <= s["at"] <= hi]
        cpu = [r["cpu_cores"] for r in rows if "cpu_cores" in r]
        busy = [r["machine_busy_pct"] for r in rows if "machine_busy_pct" in r]
        rounds = [r for r in results["churn"] if lo <= r["at"] < hi and "error" not in r]
        received = results["events"]["received_at"]
        latency = [row[1] for row in results["events"]["latency"] if lo <= row[0] < hi]
        decided = [row[2] for row in results["events"]["latency"] if lo <= row[0] < hi]
        counters = {}
        for key in ("frames_dropped", "reconnects", "decisions"):
            values = [r[key] for r in rows if r.get(key) is not None]
            counters[key] = round(values[-1] - values[0]) if len(values) > 1 else None
        flagged = median(rows, "watching_flagged")
        found.append(
            {
                "from_min": round((lo - start) / 60, 2),
                "to_min": round((hi - start) / 60, 2),
                "samples": len(rows),
                **{key: median(rows, key) for key in MEASURES},
                "cpu_cores": round(statistics.fmean(cpu), 3) if cpu else None,
                "machine_busy_pct": round(statistics.fmean(busy), 1) if busy else None,
                "watching": median(rows, "watching"),
                "watching_flagged": flagged,
                "joins": sum(len(r["joined"]) for r in rounds),
                "leaves": sum(len(r["left"]) for r in rounds),
                "kills_received": sum(1 for at in received if lo <= at < hi),
                "kills_per_flagged_stream_min": round(len(latency) / (flagged * step / 60), 2)
                if flagged
                else None,
                "latency_s": percentiles(latency),
                "decided_s": percentiles(decided),
                "outbox_max": max((r.get("outbox_events") or 0 for r in rows), default=None),
                **counters,
            }
        )
    return found


def growth(first: float | None, last: float | None) -> float | None:
    return None if not first or last is None else round((last - first) / first, 4)


def slope_per_hour(samples: list[dict[str, Any]], key: str, start: float) -> float | None:
    points = [((s["at"] - start) / 3600, s[key]) for s in samples if s.get(key) is not None]
    return round(fit(points)[1], 2) if len(points) > 1 else None


def theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """a + b*x with b the median of the slopes between every two points and a the median
    of y - b*x: a few outlying samples (a churn burst, a collection) move neither."""
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 != x1
    ]
    b = statistics.median(slopes)
    return statistics.median(y - b * x for x, y in points), b


def tail_growth(results: dict[str, Any], key: str) -> dict[str, Any]:
    """Growth of ``key`` over the soak's last ``tail_minutes``: the Theil-Sen line's rise
    over the tail against its level at the tail's start, and, for reference, the median of
    the last ENDS_MINUTES against that of the tail's first ENDS_MINUTES."""
    end = results["soak_until"]
    start = max(results["soak_from"], end - 60 * results["settings"]["tail_minutes"])
    rows = [s for s in results["samples"] if start <= s["at"] <= end and s.get(key) is not None]
    points = [((s["at"] - start) / 3600, float(s[key])) for s in rows]
    if len(points) < 2:
        return {"from_min": None, "growth": None, "ends_growth": None}
    a, b = theil_sen(points)
    hours = (end - start) / 3600
    ends = min(ENDS_MINUTES * 60, (end - start) / 3)
    first = median([s for s in rows if s["at"] <= start + ends], key)
    last = median([s for s in rows if s["at"] >= end - ends], key)
    return {
        "from_min": round((start - results["soak_from"]) / 60, 1),
        "minutes": round(hours * 60, 1),
        "level_at_start": round(a, 1),
        "fit_rise": round(b * hours, 1),
        "slope_per_hour": round(b, 2),
        "growth": round(b * hours / a, 4) if a else None,
        "ends_first": first,
        "ends_last": last,
        "ends_growth": growth(first, last),
    }


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """PASS/FAIL of each check, with the figures it is made from."""
    first, last = results["windows"][0], results["windows"][-1]
    soak = [s for s in results["samples"] if results["soak_from"] <= s["at"]]
    checks: dict[str, Any] = {}
    for key in MEASURES:
        change = growth(first[key], last[key])
        checks[key] = {
            "first": first[key],
            "last": last[key],
            "growth": change,
            "slope_per_hour": slope_per_hour(soak, key, results["soak_from"]),
            "limit": GROWTH_LIMIT,
            "pass": change is not None and change <= GROWTH_LIMIT if key in CHECKED else None,
        }
    tail = {key: tail_growth(results, key) for key in ("rss_mb", "pss_mb", *MAPPINGS)}
    rise = tail["rss_mb"]["growth"]
    checks["rss_tail"] = {
        **tail["rss_mb"],
        "limit": TAIL_GROWTH_LIMIT,
        "pass": rise is not None and rise <= TAIL_GROWTH_LIMIT,
        "by_kind": {key: tail[key] for key in ("pss_mb", *MAPPINGS)},
    }
    loss = results["loss"]
    checks["no_event_lost"] = {
        **loss,
        "pass": loss["lost"] == 0
        and loss["outbox_events_at_end"] == 0
        and not any(loss["outbox_files_after_stop"].values()),
    }
    p99_first, p99_last = first["latency_s"]["p99"], last["latency_s"]["p99"]
    factor, margin = LATENCY_HELD
    limit = None if p99_first is None else round(max(factor * p99_first, p99_first + margin), 3)
    checks["latency_held"] = {
        "first_p99_s": p99_first,
        "last_p99_s": p99_last,
        "limit_s": limit,
        "pass": limit is not None and p99_last is not None and p99_last <= limit,
    }
    overall = results["latency_s"]["p99"]
    checks["latency_p99"] = {
        "p99_s": overall,
        "limit_s": LATENCY_P99_LIMIT_S,
        "pass": overall is not None and overall <= LATENCY_P99_LIMIT_S,
    }
    checks["all_pass"] = all(c["pass"] for c in checks.values() if c["pass"] is not None)
    return checks


def others(samples: list[dict[str, Any]], since: float) -> dict[str, dict[str, float]]:
    """The other processes (servers, publishers): RSS at the first and the last sample
    after ``since``, and their mean CPU cores between them."""
    soak = [s for s in samples if s["at"] >= since]
    if len(soak) < 2:
        return {}
    first, last = soak[0], soak[-1]
    seconds = last["at"] - first["at"]
    return {
        name: {
            "rss_mb_first": first["others"][name]["rss_mb"],
            "rss_mb_last": usage["rss_mb"],
            "cores": round((usage["cpu_s"] - first["others"][name]["cpu_s"]) / seconds, 3),
        }
        for name, usage in last["others"].items()
    }


def analyse(raw: dict[str, Any], results: dict[str, Any]) -> None:
    """Fill ``results`` from the raw record of the run."""
    fleet: Fleet = raw["fleet"]
    soak_from, soak_until = raw["soak_from"], raw["soak_until"]
    decided = decisions(raw["run_log"])
    decided_ids = {event_id for _, event_id in decided}
    got = received_ids(raw["subscriber"])
    events = events_of(raw)
    results.update(
        {
            key: raw[key]
            for key in (
                "all_watching_s",
                "drain_s",
                "run_stop_at",
                "run_exit_code",
                "run_from",
                "soak_from",
                "soak_until",
                "samples",
                "monitor_errors",
            )
        }
    )
    results["churn"] = fleet.rounds
    results["churn_latency"] = churn_latency(
        raw["run_log"], fleet, raw["run_from"], raw["run_stop_at"] - SETTLE_S
    )
    results["events"] = events
    in_soak = [row[1] for row in events["latency"] if soak_from <= row[0] <= soak_until]
    results["latency_s"] = percentiles(in_soak)
    results["decided_s"] = percentiles(
        [row[2] for row in events["latency"] if soak_from <= row[0] <= soak_until]
    )
    results["loss"] = {
        "decisions_logged": len(decided),
        "decided": len(decided_ids),
        "received": len(got),
        "received_messages": events["received_messages"],
        "lost": len(decided_ids - got),
        "lost_ids": sorted(decided_ids - got)[:20],
        "received_not_logged": len(got - decided_ids),
        "outbox_events_at_end": raw["outbox_events_at_end"],
        "outbox_files_after_stop": raw["outbox_files_after_stop"],
    }
    results["log_findings"] = log_findings([raw["run_log"]], skip=DECISION)
    results["others"] = others(results["samples"], soak_from)
    results["windows"] = windows(results)
    results["verdicts"] = verdicts(results)


# -- output -------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f} %"


def native(row: dict[str, Any]) -> float | None:
    """The RSS of the brk heap and the anonymous mappings: what the allocators hold."""
    if row.get("heap_mb") is None or row.get("anon_mb") is None:
        return None
    return round(float(row["heap_mb"] + row["anon_mb"]), 1)


def window_table(rows: list[dict[str, Any]]) -> list[str]:
    return table(
        [
            "minutes",
            "RSS MB",
            "PSS MB",
            "heap + anon MB",
            "threads",
            "fds",
            "`run` cores",
            "machine busy %",
            "watching",
            "joins / leaves",
            "kills received",
            "kills per flagged stream-min",
            "sent → received p50 / p99 / max (s)",
            "outbox max",
            "frames dropped",
        ],
        [
            [
                f"{w['from_min']:g}-{w['to_min']:g}",
                w["rss_mb"],
                w["pss_mb"],
                fmt(native(w)),
                w["threads"],
                w["fds"],
                w["cpu_cores"],
                w["machine_busy_pct"],
                w["watching"],
                f"{w['joins']} / {w['leaves']}",
                w["kills_received"],
                w["kills_per_flagged_stream_min"],
                " / ".join(fmt(w["latency_s"][k]) for k in ("p50", "p99", "max")),
                w["outbox_max"],
                w["frames_dropped"],
            ]
            for w in rows
        ],
    )


def verdict_table(checks: dict[str, Any]) -> list[str]:
    rows = []
    for key, label in (
        ("rss_mb", "RSS of the `run` tree (MB)"),
        ("pss_mb", "PSS of the `run` tree (MB), for reference"),
        ("parent_rss_mb", "of the RSS: `run`'s parent process (MB)"),
        ("threads", "threads of the `run` tree"),
        ("fds", "open fds of the `run` tree"),
    ):
        c = checks[key]
        rows.append(
            [
                label,
                c["first"],
                c["last"],
                f"{pct(c['growth'])} ({fmt(c['slope_per_hour'])} / h)",
                "≤ +5 %" if c["pass"] is not None else "-",
                verdict(c["pass"]),
            ]
        )
    tail = checks["rss_tail"]
    rows.append(
        [
            f"RSS of the `run` tree over the last {fmt(tail.get('minutes'))} min (MB): "
            "Theil-Sen line",
            fmt(tail.get("level_at_start")),
            fmt(tail.get("level_at_start", 0) + tail.get("fit_rise", 0))
            if tail.get("level_at_start") is not None
            else "-",
            f"{pct(tail['growth'])} ({fmt(tail.get('slope_per_hour'))} / h); medians of its "
            f"first and last {ENDS_MINUTES:g} min: {fmt(tail.get('ends_first'))} → "
            f"{fmt(tail.get('ends_last'))} ({pct(tail['ends_growth'])})",
            f"≤ +{100 * TAIL_GROWTH_LIMIT:g} %",
            verdict(tail["pass"]),
        ]
    )
    loss = checks["no_event_lost"]
    files = sum(loss["outbox_files_after_stop"].values())
    rows.append(
        [
            "no kill lost: decided (log) → received (subscriber)",
            f"{loss['decided']:,} decided",
            f"{loss['received']:,} received",
            f"{loss['lost']} lost; outbox {fmt(loss['outbox_events_at_end'])} at the end, "
            f"{files} in its files after the stop",
            "0",
            verdict(loss["pass"]),
        ]
    )
    held = checks["latency_held"]
    rows.append(
        [
            "latency held: sent → received p99 (s)",
            held["first_p99_s"],
            held["last_p99_s"],
            "-",
            f"≤ {fmt(held['limit_s'])}",
            verdict(held["pass"]),
        ]
    )
    overall = checks["latency_p99"]
    rows.append(
        [
            "latency: sent → received p99 over the soak (s)",
            "-",
            "-",
            overall["p99_s"],
            f"≤ {overall['limit_s']:g}",
            verdict(overall["pass"]),
        ]
    )
    lines = table(["check", "first window", "last window", "change", "limit", "result"], rows)
    lines[1] = "| --- | ---: | ---: | ---: | --- | --- |"
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The section for BENCHMARKS.md."""
    s, m = results["settings"], results["machine"]
    checks = results["verdicts"]
    churn = results["churn_latency"]
    processes = ", ".join(
        f"{name} {o['rss_mb_first']:g} → {o['rss_mb_last']:g} MB, {o['cores']:g} cores"
        for name, o in results["others"].items()
    )
    last = results["samples"][-1] if results["samples"] else {}
    findings = results["log_findings"]
    shapes = "; ".join(f"{n} x `{shape}`" for shape, n in findings["counts"].items()) or "none"
    events = results["events"]
    loss = results["loss"]
    clean = ""
    if s["clean"]:
        copies = "copy" if s["clean_publishers"] == 1 else "copies"
        clean = f", {s['clean']} of them on {s['clean_publishers']} clean {copies}"
    arenas = ""
    if s.get("malloc_arena_max"):
        arenas = f", with `MALLOC_ARENA_MAX={s['malloc_arena_max']}` in its environment"
    lines = [
        f"## Soak: {s['streams']} streams for {s['minutes']:g} minutes, streams joining and "
        "leaving (issue 9)",
        "",
        f"`{results['command']}` ({results['runtime_s'] / 60:.0f} min in all, commit "
        f"{results['commit']}, {results['date']}).",
        "",
        f"**Machine:** {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}, Python "
        f"{m['python']}, nginx {m['nginx']} with libnginx-mod-rtmp; redis-server, mosquitto, "
        "nginx, the publishers, `streamguard run` and the subscriber share the cores, on "
        "loopback.",
        "",
        f"- **Streams:** {s['streams']} registered at all times in the cluster registry "
        f"(Redis){clean}, the others on {s['publishers']} copies of "
        f"`streamguard/samples/clips/{clip_of(FLAGGED, s.get('clips', '720p')).name}` "
        f"({s.get('clips', '720p')}30, {s.get('gop_s', CLIP_GOP_S)} s GOP, the flagged picture on "
        "the keyframe at 4 s of every 10 s loop: one kill per stream and loop). Each copy is "
        "published once by `streamguard replay --loop --keyframe-log` and watched by several "
        "streams (nginx fans it out to separate RTMP connections), to keep the load generator "
        "light.",
        f"- **Churn:** every {s['churn_every_s']:g} s, {s['churn_count']} random streams are "
        "unregistered and as many new ones (new ids, same kinds) registered, through the "
        f"registry code behind `streamguard streams add/remove`: {churn['joins']} joins and "
        f"{churn['leaves']} leaves. Registered → `watching` p50 / p99 / max "
        f"{' / '.join(fmt(churn['join_to_watching_s'][k]) for k in ('p50', 'p99', 'max'))} s "
        f"({churn['joins_never_watching']} never watched; joins and leaves in the last "
        f"{SETTLE_S:g} s before the run stopped are not timed); unregistered → `stopped` "
        f"{' / '.join(fmt(churn['leave_to_stopped_s'][k]) for k in ('p50', 'p99', 'max'))} s "
        f"({churn['leaves_never_stopped']} never stopped).",
        f"- **`run`:** cluster mode, `processes = {s['processes']}` (0: one per core), the "
        "Redis blocklist (`streamguard/samples/blocklist.csv` imported: PDQ, pHash and dHash per "
        "keyframe), "
        f'`[sampling] mode = "{s.get("sampling", "keyframes")}"`, '
        "kill events over MQTT QoS 1 through the outbox, the policy keeping the stream "
        f"watched after a kill (one incident per loop){arenas}. The platform: "
        "`mosquitto_sub -c -q 1` with a persistent session.",
        f"- **Measured:** every {s['sample_every_s']:g} s, the `run` process tree (parent and "
        "worker processes): RSS and PSS (smaps_rollup), the RSS split by mapping kind "
        "(smaps), threads, open fds, CPU; /streams; "
        f"/metrics. A warm-up of {s['warmup_minutes']:g} min (with churn) is left out; the "
        f"{s['minutes']:g} min after it are cut into windows of about "
        f"{s['window_minutes']:g} min (medians of the samples). Latency: the kill event's "
        "arrival at the subscriber minus the time the publisher sent that keyframe, joined on "
        "(copy, pts), by the window the keyframe was sent in.",
        "",
        *window_table(results["windows"]),
        "",
        *verdict_table(checks),
        "",
        "Growth: the last window's median against the first's; the slope is a "
        "least-squares fit over all samples after the warm-up. Over the last minutes, "
        "the Theil-Sen line (the median of the slopes between every two samples): it "
        "uses every sample, unlike two windows' medians, and a few outlying ones (a churn "
        "burst, a collection, a neighbour's load) move it no more than a median, unlike a "
        "least-squares fit, which the samples at the window's ends pull most.",
        "",
        f"- RSS by mapping kind over the last {fmt(checks['rss_tail'].get('minutes'))} min "
        "(Theil-Sen rise; level at its start): "
        + "; ".join(
            f"{label} {fmt(t.get('fit_rise'))} MB of {fmt(t.get('level_at_start'))} MB"
            for label, t in zip(
                ("PSS", *MAPPING_LABELS), checks["rss_tail"]["by_kind"].values(), strict=True
            )
        )
        + ". heap: glibc's brk heap; anon: anonymous mappings (malloc's other arenas and "
        "its blocks over the mmap threshold: decoded pictures, numpy arrays, FFmpeg "
        "buffers; pymalloc's arenas; thread stacks); file: libraries and mapped files; "
        "from /proc/PID/smaps.",
        "",
        f"- Kills: {loss['decided']:,} decided ({loss['decisions_logged']:,} decision lines: "
        "a stream in a handover is briefly watched by two processes, which decide the same "
        f"frame under the same event_id), {loss['received_messages']:,} messages received "
        f"({loss['received']:,} event ids). Kills on clean streams: "
        f"{len(events['clean_kills'])}; kills not joined to a sent keyframe: "
        f"{events['unmatched']}. Sent → decided p99 over the soak: "
        f"{fmt(results['decided_s']['p99'])} s.",
        f"- The other processes, first → last sample after the warm-up: {processes}. The "
        f"benchmark process itself: {results['bench_cores']:g} cores.",
        f"- Warnings and errors in the run log other than decisions: {shapes}; tracebacks: "
        f"{findings['tracebacks']}. `run` exit code: {results['run_exit_code']}; at the last "
        f"sample: {fmt(last.get('internal_errors'))} internal errors, "
        f"{fmt(last.get('worker_restarts'))} worker restarts, {fmt(last.get('reconnects'))} "
        f"reconnects, {fmt(last.get('frames_dropped'))} frames dropped. Churn rounds "
        f"that failed: {sum('error' in r for r in results['churn'])}; samples that could not "
        f"read /streams or /metrics: {sum(results['monitor_errors'].values())}.",
        "",
        f"**Verdict: {'PASS' if checks['all_pass'] else 'FAIL'}.**",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """RSS, PSS, RSS by mapping kind, threads, fds, CPU, streams and latency over time
    (minutes from the warm-up's end); the RSS's Theil-Sen line over the last minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = results["soak_from"]
    samples = results["samples"]
    minutes = [(s["at"] - start) / 60 for s in samples]
    figure, axes = plt.subplots(3, 2, figsize=(11, 9.5), sharex=True)
    panels = [
        (
            axes[0][0],
            [("rss_mb", "RSS"), ("pss_mb", "PSS"), ("parent_rss_mb", "parent's RSS")],
            "MB",
            "`run` memory",
        ),
        (
            axes[0][1],
            list(zip(MAPPINGS, MAPPING_LABELS, strict=True)),
            "MB",
            "`run` RSS by mapping (smaps)",
        ),
        (axes[1][0], [("threads", "threads"), ("fds", "open fds")], "count", "`run` threads, fds"),
        (axes[1][1], [("cpu_cores", "`run` cores")], "cores", "CPU"),
        (
            axes[2][0],
            [("registered", "registered"), ("watching", "watching")],
            "streams",
            "streams",
        ),
    ]
    for axis, series, unit, title in panels:
        for key, label in series:
            values = [s.get(key) for s in samples]
            axis.plot(minutes, [float("nan") if v is None else v for v in values], label=label)
        axis.set(ylabel=unit, title=title)
    tail = results["verdicts"]["rss_tail"]
    if tail.get("level_at_start") is not None:
        x0 = tail["from_min"]
        x1 = x0 + tail["minutes"]
        a, rise = tail["level_at_start"], tail["fit_rise"]
        axes[0][0].plot([x0, x1], [a, a + rise], "k--", label="RSS, Theil-Sen over the tail")
    axis = axes[2][1]
    latency = results["events"]["latency"]
    axis.scatter(
        [(row[0] - start) / 60 for row in latency], [row[1] for row in latency], s=2, alpha=0.3
    )
    for w in results["windows"]:
        p99 = w["latency_s"]["p99"]
        if p99 is not None:
            axis.hlines(p99, w["from_min"], w["to_min"], colors="red")
    axis.set(ylabel="s", title="keyframe sent → kill received (red: window p99)")
    for axis in axes.flat:
        axis.axvspan(min(minutes, default=0), 0, color="grey", alpha=0.15)  # the warm-up
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    for axis in axes[2]:
        axis.set_xlabel("minutes after the warm-up")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: the servers, publishers and `run` are stopped on the way out
    (a run started in the background with nohup ignores SIGINT)."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=120, help="registered at all times")
    parser.add_argument("--minutes", type=float, default=20, help="the measured soak")
    parser.add_argument("--warmup-minutes", type=float, default=3)
    parser.add_argument(
        "--window-minutes", type=float, default=2, help="first/last window compared"
    )
    parser.add_argument(
        "--tail-minutes",
        type=float,
        default=90,
        help="RSS growth checked over the soak's last minutes (≤ 2 %%)",
    )
    parser.add_argument("--sample-every-s", type=float, default=10)
    parser.add_argument("--churn-every-s", type=float, default=20)
    parser.add_argument("--churn-count", type=int, default=5, help="leave (and join) per round")
    parser.add_argument("--publishers", type=int, default=12, help="flagged copies published")
    parser.add_argument("--clean-publishers", type=int, default=2, help="clean copies published")
    parser.add_argument("--clean-share", type=float, default=0.1, help="of the streams")
    parser.add_argument(
        "--clips", choices=sorted(CLIP_FILES), default="720p", help="the published clips' size"
    )
    parser.add_argument(
        "--sampling",
        choices=MODES,
        default=Sampling().mode,
        help="`run`'s [sampling] mode (keyframes: what the 20-minute soak of issue 9 ran)",
    )
    parser.add_argument(
        "--gop-s",
        type=int,
        choices=(CLIP_GOP_S, 4),
        default=CLIP_GOP_S,
        help="keyframe interval of the published clips (4: re-encoded, 40 %% fewer keyframes)",
    )
    parser.add_argument("--processes", type=int, default=0, help="`run` processes; 0 = per core")
    parser.add_argument("--blocklist", type=Path, default=BLOCKLIST, help="imported into Redis")
    parser.add_argument(
        "--malloc-arena-max",
        type=int,
        default=0,
        help="run `run` with MALLOC_ARENA_MAX=N (glibc malloc arenas; 0: streamguard's own, 2)",
    )
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=0,
        help="register the first streams over this long after `run` is up (0: all before)",
    )
    parser.add_argument("--drain-timeout-s", type=float, default=60)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--plot", type=Path, help="write the samples over time to this PNG")
    args = parse(parser, SMOKE, "soak")
    if args.render:
        publish(args, "soak", saved(args.out, "soak"), markdown, plot)
        return
    args.clean = round(args.streams * args.clean_share) if args.clean_publishers else 0
    args.window_minutes = min(args.window_minutes, args.minutes / 3)
    work = (args.out / "soak").resolve()  # logs, servers' files; nginx needs absolute paths
    os.environ["STREAMGUARD_LOG_FORMAT"] = "json"  # the run's log, with ms times
    # A reader socket per stream and the publishers' connections, in few processes.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, interrupt)
    started_at = time.monotonic()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {
        "command": invocation(),
        "commit": commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine("pyav", "nginx"),
        "load_at_start": load(),
        "settings": settings,
    }
    raw = soak(args, work)
    analyse(raw, results)
    results["runtime_s"] = round(time.monotonic() - started_at, 1)
    results["bench_cores"] = round(time.process_time() / results["runtime_s"], 3)
    publish(args, "soak", results, markdown, plot)


if __name__ == "__main__":
    main()
