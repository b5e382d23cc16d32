"""Kill events over MQTT: the outbox and QoS 1 publishing, then end to end (issue 5).

Everything talks to a real Debian mosquitto on loopback.

1. puback: in this process, an ``MqttSink`` with its SQLite ``Outbox`` (on the same disk as
   ``state_dir``) gets ``publish()`` calls spaced like real decisions; each event's time from
   the call to its PUBACK, the share of the SQLite commit (fsync), and the DELETE after it.
2. burst: N events published as fast as the event loop allows; events/s until the last
   PUBACK, then the same with the broker restarted (SIGTERM, start) half-way. Counts what a
   persistent ``mosquitto_sub`` received: every event must arrive (duplicates allowed).
3. live: nginx-rtmp, ``streamguard replay --loop --keyframe-log`` (K copies of the flagged
   clip), ``streamguard run --mqtt`` (policy: keep watching, one incident per loop) and a
   ``mosquitto_sub`` subscriber; flagged keyframe sent -> kill event received.
4. enforce: the same with the default policy and ``streamguard enforce`` (nginx-rtmp
   adapter, publish hook); flagged keyframe sent -> nginx's /stat no longer lists the
   publisher. Skipped when ``streamguard enforce`` is not available.

Writes bench/out/events.json and bench/out/events.md; ``--plot PNG`` draws latency CDFs.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from bench import parse
from bench.bench_live import (
    BLOCKLIST,
    GOP_S,
    STREAMGUARD,
    all_watching,
    copy_of,
    epoch,
    flagged,
    read_send_log,
    replaying,
)
from bench.processes import machine_busy, started, wait_until
from bench.progress import measure_window
from bench.report import commit, invocation, machine, percentiles, publish, saved, table, verdict
from streamguard.config.mqtt import MqttSettings
from streamguard.events.mqtt import MqttSink
from streamguard.events.outbox import Outbox, Pending
from streamguard.events.schema import Action, Event, Evidence, FrameSeen
from streamguard.samples import SAMPLES_DIR
from tests.support.mosquitto import Mosquitto, mosquitto_broker
from tests.support.nginx import NginxRtmp, nginx_rtmp_server
from tests.support.ports import free_port
from tests.support.service import Service
from tests.support.subscriber import Received, Subscriber

KILLS = "streamguard/v1/kill/"
TARGETS = {
    "puback_p99_ms": 50.0,
    "live_p99_s": 1.5,
    "enforce_p99_s": 2.5,
}
STAT_POLL_S = 0.05  # how often part 4 reads nginx's /stat
SMOKE = {
    "events": 20,
    "rate": 50,
    "burst": 200,
    "copies": 1,
    "seconds": 1,
    "enforce_copies": 1,
    "enforce_timeout": 30,
    "processes": 1,
}


# -- 1 and 2: the sink in this process ---------------------------------------------------


class TimedOutbox(Outbox):
    """The shipped outbox, timing its commits and noting when each event's PUBACK came back
    (``delivered`` is called as soon as the awaited QoS 1 publish returns)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commit_s: dict[str, float] = {}  # event_id -> seconds in put() (INSERT + fsync)
        self.acked_at: dict[str, float] = {}  # event_id -> perf_counter() at the PUBACK
        self.delete_s: list[float] = []  # seconds in delivered() (DELETE + fsync)
        self._ids: dict[int, str] = {}

    def put(self, event_id: str, topic: str, payload: bytes) -> bool:
        start = time.perf_counter()
        stored = super().put(event_id, topic, payload)
        self.commit_s[event_id] = time.perf_counter() - start
        return stored

    def oldest(self, limit: int = 100) -> list[Pending]:
        pending = super().oldest(limit)
        self._ids.update((p.seq, p.event_id) for p in pending)
        return pending

    def delivered(self, seq: int) -> None:
        acked = time.perf_counter()
        super().delivered(seq)
        self.delete_s.append(time.perf_counter() - acked)
        self.acked_at[self._ids.pop(seq)] = acked


_SEQUENCE = itertools.count()


def make_event(stream_id: str = "bench-1") -> Event:
    """A kill event shaped like a real one (about 550 bytes of JSON); each its own id."""
    now = time.time()
    return Event(
        Action.KILL,
        stream_id,
        "rtmp://127.0.0.1:1935/live/***",
        "bench/0",
        FrameSeen(4.0 + next(_SEQUENCE), now - 0.011, 1280, 720),
        now,
        match=Evidence(
            algo="pdq",
            distance=0,
            threshold=31,
            quality=100,
            entry_id="flagged_01-pdq",
            list="streamguard-samples",
            category="test",
            label="stand-in flagged image 01 (synthetic test content)",
        ),
    )


async def until(
    condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.005
) -> float:
    """Poll ``condition`` without blocking the loop; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(interval_s)
    return time.monotonic() - start


@asynccontextmanager
async def sink_on(broker: Mosquitto, path: Path, name: str) -> AsyncIterator[MqttSink]:
    """A connected ``MqttSink`` (as ``run`` builds it) with a fresh ``TimedOutbox``."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    outbox = TimedOutbox(path)
    sink = MqttSink(MqttSettings(url=broker.url()), outbox, name)
    task = asyncio.create_task(sink.run())
    try:
        await until(lambda: sink.link.connected, 10, "the sink connected")
        yield sink
    finally:
        sink.stop()
        await asyncio.wait_for(task, 10)
        outbox.close()


def event_ids(subscriber: Subscriber) -> list[str]:
    return [m.json()["event_id"] for m in list(subscriber.messages) if m.topic.startswith(KILLS)]


async def subscribed(sink: MqttSink, subscriber: Subscriber) -> None:
    """Publish until ``mosquitto_sub`` receives (it subscribes some time after it starts)."""
    for _ in range(200):
        await sink.publish(make_event("warm-up"))
        try:
            await until(lambda: subscriber.messages, 0.1, "a message received")
            break
        except TimeoutError:
            continue
    for _ in range(20):  # warm up the connection and SQLite
        await sink.publish(make_event("warm-up"))
    await until(lambda: not len(sink.outbox), 10, "warm-up delivered")


def ms(seconds: list[float]) -> list[float]:
    return [round(s * 1000, 3) for s in seconds]


def load() -> dict[str, float]:
    one, five, _ = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2)}


@contextmanager
def cpu_window() -> Iterator[dict[str, float]]:
    """Fills in this process's CPU seconds and the machine's busy share over the block."""
    result: dict[str, float] = {}
    busy0, total0 = machine_busy()
    cpu0 = time.process_time()
    yield result
    busy1, total1 = machine_busy()
    result["bench_cpu_s"] = round(time.process_time() - cpu0, 2)
    result["machine_busy_pct"] = round(100 * (busy1 - busy0) / max(total1 - total0, 1))
    result |= load()


async def bench_puback(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``publish()`` every 1/rate s; from the call to the PUBACK, per event."""
    count, rate = args.events, args.rate
    with mosquitto_broker(work / "mosquitto") as broker:
        subscriber = Subscriber(broker.port, KILLS + "#")
        try:
            async with sink_on(broker, work / "outbox.sqlite", "bench-puback") as sink:
                outbox = sink.outbox
                assert isinstance(outbox, TimedOutbox)
                await subscribed(sink, subscriber)
                called: dict[str, float] = {}
                called_wall: dict[str, float] = {}
                print(f"puback: {count} events at {rate:g}/s ({count / rate:.0f} s)")
                with cpu_window() as usage:
                    start = time.perf_counter()
                    for n in range(count):
                        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
                        event = make_event(f"bench-{n % 10}")
                        called_wall[event.event_id] = time.time()
                        called[event.event_id] = time.perf_counter()
                        await sink.publish(event)
                        if n and n % (int(rate) * 10) == 0:
                            print(f"  {n} published, {len(outbox.acked_at)} acknowledged")
                    await until(lambda: called.keys() <= outbox.acked_at.keys(), 30, "PUBACKs")
                received = lambda: called.keys() <= set(event_ids(subscriber))  # noqa: E731
                await until(received, 10, "received", interval_s=0.2)
        finally:
            subscriber.close()
    received = {}
    for message in subscriber.messages:
        received.setdefault(message.json()["event_id"], message.at)
    total = [outbox.acked_at[i] - called[i] for i in called]
    commit = [outbox.commit_s[i] for i in called]
    rest = [t - c for t, c in zip(total, commit, strict=True)]
    return {
        "events": count,
        "rate_per_s": rate,
        "publish_to_puback_ms": percentiles(total, 1000),
        "commit_ms": percentiles(commit, 1000),
        "commit_to_puback_ms": percentiles(rest, 1000),
        "delete_after_puback_ms": percentiles(outbox.delete_s[-count:], 1000),
        "publish_to_subscriber_ms": percentiles(
            [received[i] - called_wall[i] for i in called], 1000
        ),
        "commit_share_of_p50": round(statistics.median(commit) / statistics.median(total), 2),
        **usage,
        "sqlite": sqlite_costs(work, count),
        "samples": {"publish_to_puback_ms": ms(total), "commit_ms": ms(commit)},
    }


def sqlite_costs(work: Path, count: int) -> dict[str, Any]:
    """``put()`` and ``delivered()`` alone, ``count`` times each, with the shipped
    ``synchronous=FULL`` and, to isolate the fsync, ``synchronous=OFF``."""
    costs: dict[str, Any] = {}
    for mode in ("FULL", "OFF"):
        path = work / f"sqlite-{mode}.sqlite"
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        outbox = TimedOutbox(path)
        outbox._db.execute(f"PRAGMA synchronous={mode}")  # what-if only: the shipped is FULL
        for _ in range(count):
            event = make_event()
            outbox.put(event.event_id, KILLS + "bench", json.dumps(event.to_json()).encode())
        for pending in outbox.oldest(count):
            outbox.delivered(pending.seq)
        outbox.close()
        costs[f"put_{mode.lower()}_ms"] = percentiles(list(outbox.commit_s.values()), 1000)
        costs[f"delete_{mode.lower()}_ms"] = percentiles(outbox.delete_s, 1000)
    return costs


async def bench_burst(args: argparse.Namespace, work: Path, restart: bool) -> dict[str, Any]:
    """``args.burst`` events published back to back (yielding once after each, as a worker
    does between frames); the time until the last PUBACK. With ``restart``, the broker is
    stopped (SIGTERM) and started again on the same port once half are acknowledged."""
    count = args.burst
    name = "burst-restart" if restart else "burst"
    with mosquitto_broker(work / name) as broker:
        subscriber = Subscriber(broker.port, KILLS + "#", client_id=f"bench-{name}-sub")
        try:
            async with sink_on(broker, work / f"{name}.sqlite", f"bench-{name}") as sink:
                await subscribed(sink, subscriber)
                base = sink.published
                restarted: dict[str, float] = {}

                async def watch() -> None:
                    """Progress; the restart at half-way."""
                    last = time.monotonic()
                    while sink.published - base < count:
                        if restart and not restarted and sink.published - base >= count // 2:
                            stopped = time.perf_counter()
                            await asyncio.to_thread(broker.stop)
                            restarted["stopped_s"] = round(time.perf_counter() - stopped, 3)
                            await asyncio.to_thread(broker.start)
                            restarted["down_s"] = round(time.perf_counter() - stopped, 3)
                            restarted["at_acknowledged"] = sink.published - base
                            await until(
                                lambda: sink.published - base > restarted["at_acknowledged"],
                                60,
                                "delivery resumed",
                            )
                            restarted["resumed_after_s"] = round(time.perf_counter() - stopped, 3)
                        if time.monotonic() - last >= 5:
                            last = time.monotonic()
                            done = sink.published - base
                            print(f"  {name}: {done} acknowledged, {len(sink.outbox)} waiting")
                        await asyncio.sleep(0.005)

                ids = []
                print(f"{name}: {count} events")
                with cpu_window() as usage:
                    watcher = asyncio.create_task(watch())
                    start = time.perf_counter()
                    for n in range(count):
                        event = make_event(f"bench-{n % 10}")
                        ids.append(event.event_id)
                        await sink.publish(event)
                        await asyncio.sleep(0)
                    committed_s = time.perf_counter() - start
                    await asyncio.wait_for(watcher, 300)
                    elapsed_s = time.perf_counter() - start
                acknowledged = sink.published - base
                left = len(sink.outbox)
                wanted = set(ids)
                with contextlib.suppress(TimeoutError):  # what is missing is counted below
                    received = lambda: wanted <= set(event_ids(subscriber))  # noqa: E731
                    await until(received, 60, "received", interval_s=0.5)
                if restart:
                    restarted["idle"] = await after_idle_restart(broker, sink)
        finally:
            subscriber.close()
    got = [i for i in event_ids(subscriber) if i in wanted]
    return {
        "events": count,
        "restart": restarted or None,
        "committed_s": round(committed_s, 3),
        "elapsed_s": round(elapsed_s, 3),
        "events_per_s": round(count / elapsed_s),
        "acknowledged": acknowledged,
        "left_in_outbox": left,
        "received_unique": len(set(got)),
        "received_duplicates": len(got) - len(set(got)),
        "lost": len(wanted - set(got)),
        **usage,
    }


async def after_idle_restart(broker: Mosquitto, sink: MqttSink) -> dict[str, Any]:
    """The broker is stopped for 1 s while the sink has nothing to send (does the sink
    notice?), started again, then one event: the seconds from ``publish()`` to its PUBACK."""
    await asyncio.to_thread(broker.stop)
    await asyncio.sleep(1)
    noticed = not sink.link.connected
    await asyncio.to_thread(broker.start)
    await asyncio.sleep(1)
    outbox = sink.outbox
    assert isinstance(outbox, TimedOutbox)
    event = make_event("after-restart")
    start = time.perf_counter()
    await sink.publish(event)
    await until(lambda: event.event_id in outbox.acked_at, 60, "PUBACK after the restart")
    puback_s = round(outbox.acked_at[event.event_id] - start, 3)
    return {"idle_sink_noticed_the_broker_gone": noticed, "next_event_puback_s": puback_s}


# -- 3 and 4: real processes -------------------------------------------------------------


def write_config(work: Path, streams: dict[str, str], args: argparse.Namespace, extra: str) -> Path:
    config = work / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{u}"\n' for i, u in streams.items())
    config.write_text(
        f'processes = {args.processes}\nstate_dir = "{work / "state"}"\n'
        f'[blocklist]\nfiles = ["{BLOCKLIST}"]\n{extra}{tables}'
    )
    return config


def kill_events(subscriber: Subscriber) -> list[tuple[Received, dict[str, Any]]]:
    """(message, event) of each kill event, the first copy of each event id."""
    seen, events = set(), []
    for message in list(subscriber.messages):
        if not message.topic.startswith(KILLS) or message.retained:
            continue
        event = message.json()
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            events.append((message, event))
    return events


def sent_at(sent: dict[tuple[int, float], float], event: dict[str, Any]) -> float | None:
    return sent.get((copy_of(event["stream_id"]), round(event["frame"]["pts_s"], 3)))


def bench_live(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """K looping copies watched over RTMP by `run --mqtt`; sent -> received by a subscriber."""
    copies = args.copies
    work.mkdir(parents=True, exist_ok=True)
    policy = "[policy]\nkeep_watching_after_kill = true\nincident_gap_s = 5\n"
    with ExitStack() as stack:
        broker = stack.enter_context(mosquitto_broker(work / "mosquitto"))
        subscriber = Subscriber(broker.port, KILLS + "#")
        stack.callback(subscriber.close)
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False))
        _, send_log = stack.enter_context(replaying(nginx, copies, work))
        names = [f"lat-{n}" for n in range(copies)]
        wait_until(lambda: set(names) <= nginx.published(), 30, "all copies published")
        streams = {f"rtmp-{n}": nginx.rtmp_url(f"lat-{n}") for n in range(copies)}
        config = write_config(work, streams, args, policy)
        service = Service(["--config", str(config), "--mqtt", broker.url()], work / "run.log")
        stack.callback(service.stop)
        wait_until(lambda: all_watching(service, copies), 60, "all streams watching")
        print(f"live: {copies} streams watching; measuring {args.seconds:g} s")
        with cpu_window() as usage:
            window_from = time.time()
            measure_window(args.seconds, "kill events", lambda: len(subscriber.messages))
            window_until = time.time()
        time.sleep(GOP_S + 1)  # the events of the window's last keyframes arrive
        final = list(service.streams().values())
    sent = read_send_log(send_log)
    total, decided, hop, unmatched = [], [], [], 0
    for message, event in kill_events(subscriber):
        at = sent_at(sent, event)
        if at is None:
            unmatched += 1
        elif window_from <= at <= window_until:
            total.append(message.at - at)
            decided.append(epoch(event["detected_at"]) - at)
            hop.append(message.at - epoch(event["detected_at"]))
    flagged_at = [at for (_, pts), at in sent.items() if flagged(pts)]
    return {
        "copies": copies,
        "window_s": round(window_until - window_from, 1),
        "flagged_keyframes_sent": sum(window_from <= at <= window_until for at in flagged_at),
        "sent_to_received_s": percentiles(total),
        "sent_to_decided_s": percentiles(decided),
        "decided_to_received_s": percentiles(hop),
        "unmatched_events": unmatched,
        "frames_dropped": sum(s["frames_dropped"] for s in final),
        **usage,
        "samples": {"live_sent_to_received_s": [round(t, 4) for t in total]},
    }


def enforce_available() -> str:
    """ "" when `streamguard enforce --help` works, else why not."""
    probe = subprocess.run(
        [sys.executable, "-m", "streamguard", "enforce", "--help"], capture_output=True, text=True
    )
    return "" if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


class StatPoller:
    """Reads nginx's /stat every STAT_POLL_S s in a thread. A stream's drop happened between
    the last answer that listed it and the next request; ``dropped_at`` is the midpoint."""

    def __init__(self, nginx: NginxRtmp) -> None:
        self.nginx = nginx
        self.last_seen: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            before = time.time()
            try:
                published = self.nginx.published()
            except OSError:
                continue
            after = time.time()
            for name in published:
                self.last_seen[name] = after
            for name in self.last_seen.keys() - published - self.gone_at.keys():
                self.gone_at[name] = before  # gone by the time this poll was sent
            self._stop.wait(STAT_POLL_S)

    def dropped_at(self, name: str) -> float:
        return (self.last_seen[name] + self.gone_at[name]) / 2

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def enforcing(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen]:
    command = [sys.executable, "-m", "streamguard", "enforce", "--config", str(config)]
    with started(command, log, stop_signal=signal.SIGTERM) as process:
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: json.loads(_get(ready))["ready"], 20, "enforce subscribed", 0.2)
        yield process


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read()
    except urllib.error.HTTPError as exc:  # /readyz answers 503 until subscribed
        return exc.read()


def bench_enforce(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """K copies, default policy (kill, stop watching), enforce dropping each publisher.

    ``--enforce-order run-first`` (default): `run` is up and retrying every ~0.5 s before
    the copies start, so it reads a copy from its first keyframes on and the flagged one
    (4 s) is read in steady state. ``publish-first``: `run` starts once all copies publish;
    a copy whose first keyframe read is the flagged one then pays FFmpeg's 0.5 s probe.
    """
    copies = args.enforce_copies
    work.mkdir(parents=True, exist_ok=True)
    hook_port = free_port()
    run_first = args.enforce_order == "run-first"
    with ExitStack() as stack:
        broker = stack.enter_context(mosquitto_broker(work / "mosquitto"))
        subscriber = Subscriber(broker.port, KILLS + "#")
        stack.callback(subscriber.close)
        hook = f"http://127.0.0.1:{hook_port}/on_publish"
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False, on_publish=hook))
        streams = {f"rtmp-{n}": nginx.rtmp_url(f"kill-{n}") for n in range(copies)}
        extra = (
            f'[mqtt]\nurl = "{broker.url()}"\n'
            f'[enforce]\nadapter = "nginx-rtmp"\napi_url = "{nginx.control_url}"\n'
            f'listen = "127.0.0.1:{hook_port}"\nstate_file = "{work / "enforce.sqlite3"}"\n'
        )
        if run_first:
            extra += "[ingest]\nreconnect_initial_s = 0.5\nreconnect_max_s = 0.5\n"
        (work / "enforce.sqlite3").unlink(missing_ok=True)
        config = write_config(work, streams, args, extra)
        stack.enter_context(enforcing(config, hook_port, work / "enforce.log"))

        def run() -> None:
            service = Service(["--config", str(config)], work / "run.log", start_timeout_s=60)
            stack.callback(service.stop)

        if run_first:
            run()
        send_log = work / "keyframes.jsonl"
        send_log.unlink(missing_ok=True)
        command = [STREAMGUARD, "replay", str(args.clip), nginx.rtmp_url("kill-{n}"), "--loop"]
        command += ["--copies", str(copies), "--keyframe-log", str(send_log)]
        stack.enter_context(started(command, work / "replay.log", stop_signal=signal.SIGTERM))
        poller = StatPoller(nginx)
        stack.callback(poller.close)
        names = {f"kill-{n}" for n in range(copies)}
        wait_until(lambda: names <= poller.last_seen.keys(), 60, "all copies published", 0.2)
        if not run_first:
            run()
        print(f"enforce: {copies} streams published, `run` ({args.enforce_order}) and `enforce` up")
        with cpu_window() as usage:
            try:
                wait_until(
                    lambda: names <= poller.gone_at.keys(), args.enforce_timeout, "all dropped", 1
                )
            except TimeoutError as exc:
                if args.smoke:
                    raise
                print(f"  {exc}: {len(poller.gone_at)} dropped")
    sent = read_send_log(send_log)
    total, read, decided, to_drop, unmatched = [], [], [], [], 0
    for message, event in kill_events(subscriber):
        at = sent_at(sent, event)
        name = f"kill-{copy_of(event['stream_id'])}"
        if at is None or name not in poller.gone_at:
            unmatched += 1
            continue
        dropped = poller.dropped_at(name)
        total.append(dropped - at)
        read.append(epoch(event["frame"]["received_at"]) - at)
        decided.append(epoch(event["detected_at"]) - at)
        to_drop.append(dropped - message.at)
    return {
        "copies": copies,
        "order": args.enforce_order,
        "dropped": len(poller.gone_at),
        "stat_poll_s": STAT_POLL_S,
        "sent_to_dropped_s": percentiles(total),
        "sent_to_read_s": percentiles(read),
        "sent_to_decided_s": percentiles(decided),
        "received_to_dropped_s": percentiles(to_drop),
        "unmatched_events": unmatched,
        **usage,
        "samples": {"enforce_sent_to_dropped_s": [round(t, 4) for t in total]},
    }


# -- output -------------------------------------------------------------------------------


# part, headline measurement, its label, unit, p99 target, then (label, key) of the detail rows
SECTIONS = [
    (
        "puback",
        "publish_to_puback_ms",
        "1. `publish()` → PUBACK, loopback",
        "ms",
        "puback_p99_ms",
        [
            ("of which: outbox commit (INSERT + fsync)", "commit_ms"),
            ("of which: commit → PUBACK", "commit_to_puback_ms"),
            ("then: DELETE after PUBACK", "delete_after_puback_ms"),
            ("`publish()` → subscriber", "publish_to_subscriber_ms"),
        ],
    ),
    (
        "live",
        "sent_to_received_s",
        "3. keyframe sent → kill event received",
        "s",
        "live_p99_s",
        [
            ("of which: sent → decided", "sent_to_decided_s"),
            ("of which: decided → received", "decided_to_received_s"),
        ],
    ),
    (
        "enforce",
        "sent_to_dropped_s",
        "4. keyframe sent → publisher dropped",
        "s",
        "enforce_p99_s",
        [
            ("of which: sent → read by `run`", "sent_to_read_s"),
            ("of which: sent → decided", "sent_to_decided_s"),
            ("of which: received → dropped", "received_to_dropped_s"),
        ],
    ),
]


def row(name: str, p: dict[str, Any], unit: str, target: str = "", result: str = "") -> list[Any]:
    spread = [None if p[k] is None else p[k] + 0.0 for k in ("p50", "p95", "p99", "max")]  # no -0
    return [name, p["count"], *spread, unit, target, result]


def markdown(results: dict[str, Any]) -> str:
    header = ["measurement", "n", "p50", "p95", "p99", "max", "unit", "target", "result"]
    rows = []
    for part, key, label, unit, target_key, details in SECTIONS:
        target = f"p99 ≤ {TARGETS[target_key]:g}"
        found = results.get(part, {})
        if key not in found:
            reason = found.get("error", "not run")
            rows.append([label, 0, "-", "-", "-", "-", unit, target, f"not measured: {reason}"])
            continue
        p99 = found[key]["p99"]
        ok = None if p99 is None else p99 <= TARGETS[target_key]
        rows.append(row(label, found[key], unit, target, verdict(ok)))
        rows += [row(f"   {name}", found[k], unit) for name, k in details]
        if part == "puback":
            for name, what in (("put", "`Outbox.put`"), ("delete", "`Outbox.delivered`")):
                for mode in ("full", "off"):
                    p = found["sqlite"][f"{name}_{mode}_ms"]
                    rows.append(row(f"   {what} alone, synchronous={mode.upper()}", p, unit))
    lines = table(header, rows)
    lines[1] = "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
    bursts = [b for b in (results.get("burst"), results.get("burst_restart")) if b]
    if bursts:
        lines += [
            "",
            *table(
                [
                    "2. burst",
                    "events",
                    "events/s to last PUBACK",
                    "all committed after (s)",
                    "acknowledged",
                    "left in outbox",
                    "received (unique)",
                    "duplicates",
                    "lost",
                    "no PUBACK for (s)",
                    "bench CPU s",
                ],
                [
                    [
                        "broker restarted half-way" if b["restart"] else "steady broker",
                        b["events"],
                        b["events_per_s"],
                        b["committed_s"],
                        b["acknowledged"],
                        b["left_in_outbox"],
                        b["received_unique"],
                        b["received_duplicates"],
                        b["lost"],
                        b["restart"]["resumed_after_s"] if b["restart"] else "-",
                        b["bench_cpu_s"],
                    ]
                    for b in bursts
                ],
            ),
        ]
    restart = (results.get("burst_restart") or {}).get("restart") or {}
    if idle := restart.get("idle"):
        lines += [
            "",
            f"Broker restarted mid-burst: stopped after {restart['at_acknowledged']:,} "
            f"PUBACKs, back {restart['down_s']} s later; the next PUBACK came "
            f"{restart['resumed_after_s']} s after the stop. Broker stopped for 1 s while the "
            f"sink was idle: the sink noticed: {idle['idle_sink_noticed_the_broker_gone']}; "
            f"the next event's PUBACK took {idle['next_event_puback_s']} s.",
        ]
    loads = [
        f"{part}: load {v['load_1m']} / {v['load_5m']} (1 / 5 min), machine busy "
        f"{v['machine_busy_pct']} %"
        for part, v in results.items()
        if isinstance(v, dict) and "machine_busy_pct" in v
    ]
    return "\n".join([*lines, "", "; ".join(loads) + ".", ""])


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = results.get("samples", {})
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = {
        "publish_to_puback_ms": "publish() → PUBACK",
        "commit_ms": "of which outbox commit",
        "live_sent_to_received_s": "3. keyframe sent → kill event received",
        "enforce_sent_to_dropped_s": "4. keyframe sent → publisher dropped",
    }
    panels = [
        (axes[0], ["publish_to_puback_ms", "commit_ms"], "ms", "1. decision → PUBACK"),
        (axes[1], ["live_sent_to_received_s", "enforce_sent_to_dropped_s"], "s", "end to end"),
    ]
    for axis, names, unit, title in panels:
        for name in names:
            values = np.sort(np.asarray(series.get(name, [])))
            if values.size:
                label = f"{labels[name]} (n = {values.size})"
                axis.step(values, np.arange(1, values.size + 1) / values.size, label=label)
        axis.set(xlabel=unit, ylabel="fraction ≤ x", title=title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")


def record(results: dict[str, Any], name: str, part: dict[str, Any]) -> None:
    """Keep ``part`` under ``name``, its raw samples under ``samples``; print it."""
    results.setdefault("samples", {}).update(part.pop("samples", {}))
    results[name] = part
    print(json.dumps(part, indent=1))


async def in_process(args: argparse.Namespace, parts: set[str], results: dict[str, Any]) -> None:
    work = (args.out / "events").resolve()
    work.mkdir(parents=True, exist_ok=True)
    if "puback" in parts:
        record(results, "puback", await bench_puback(args, work))
    if "burst" in parts:
        record(results, "burst", await bench_burst(args, work, restart=False))
        if args.restart:
            record(results, "burst_restart", await bench_burst(args, work, restart=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="puback,burst,live,enforce")
    parser.add_argument("--events", type=int, default=1000, help="puback: events")
    parser.add_argument("--rate", type=float, default=20, help="puback: events per second")
    parser.add_argument("--burst", type=int, default=20_000, help="burst: events")
    parser.add_argument("--no-restart", dest="restart", action="store_false")
    parser.add_argument("--copies", type=int, default=10, help="live: looping streams")
    parser.add_argument("--seconds", type=float, default=80, help="live: window")
    parser.add_argument("--enforce-copies", type=int, default=50, help="enforce: streams")
    parser.add_argument("--enforce-timeout", type=float, default=90)
    parser.add_argument(
        "--enforce-order", choices=["run-first", "publish-first"], default="run-first"
    )
    parser.add_argument("--processes", type=int, default=0, help="`run` processes; 0 = per core")
    parser.add_argument("--clip", type=Path, default=SAMPLES_DIR / "clips" / "flagged_720p.mp4")
    parser.add_argument("--plot", type=Path, help="write latency CDFs to this PNG")
    args = parse(parser, SMOKE, "events")
    if args.render:
        publish(args, "events", saved(args.out, "events"), markdown, plot)
        return
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {
        "command": invocation(),
        "commit": commit(),
        "machine": machine("pyav", "nginx"),
        "load_at_start": load(),
    }
    started_at = time.monotonic()
    asyncio.run(in_process(args, parts, results))
    if "live" in parts:
        record(results, "live", bench_live(args, (args.out / "events" / "live").resolve()))
    if "enforce" in parts:
        if reason := enforce_available():
            if args.smoke:
                raise SystemExit(f"enforce: {reason}")
            results["enforce"] = {"error": f"enforce not available at {results['commit']}"}
            print(f"enforce: skipped ({reason})")
        else:
            work = (args.out / "events" / "enforce").resolve()
            record(results, "enforce", bench_enforce(args, work))
    results["runtime_s"] = round(time.monotonic() - started_at, 1)
    publish(args, "events", results, markdown, plot)


if __name__ == "__main__":
    main()
