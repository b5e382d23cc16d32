"""Live detection latency and scale of `streamguard run` against a real nginx-rtmp.

Everything runs as real processes on this machine: Debian nginx with the RTMP module (HLS
output served over HTTP), `streamguard replay` publishing copies of the flagged 720p clip
in real time (it logs the wall-clock time it sends each keyframe), and `streamguard run`
watching the copies, whose kill events (stdout) are joined with the send log.

1. Latency: K copies watched over RTMP and over nginx's HLS output in one `run`;
   latency = event ``detected_at`` - the keyframe's ``sent_at``.
2. Scale: for each N, N copies over RTMP; over a steady window, the CPU seconds of the
   `run` process tree per stream-second, its memory, dropped and skipped frames, keyframes
   sampled against keyframes sent, and the detection latency. With ``--py-spy``, the
   largest N is profiled after its window.

Writes bench/out/live.json and bench/out/live.md.
"""

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import ROOT, parse
from bench.processes import machine_busy, started, tree_cpu_s, tree_memory_mb, wait_until
from bench.progress import measure_window
from bench.report import invocation, machine, percentiles, publish, saved, table
from streamguard.samples import SAMPLES_DIR
from tests.support.nginx import NginxRtmp, nginx_rtmp_server
from tests.support.service import Service

CLIP = SAMPLES_DIR / "clips" / "flagged_720p.mp4"  # 10 s, 720p30, keyframe every 2 s
BLOCKLIST = SAMPLES_DIR / "blocklist.csv"
FLAGGED_AT_S = 4.0  # the flagged picture is on the keyframe at 4 s of every 10 s loop
LOOP_S = 10.0
GOP_S = 2.0
BIN = Path(sys.executable).parent
STREAMGUARD = str(BIN / "streamguard")
PY_SPY = BIN / "py-spy"
HLS_FRAGMENT = "1s"  # nginx's hls_fragment, tests/support/nginx.py
BASELINE_STREAMS = 2
# Both parts, the scale part at its baseline N = 2 only, in-process `run`.
SMOKE = {
    "latency_copies": 1,
    "latency_seconds": 1,
    "streams": [],
    "warmup_seconds": 0,
    "baseline_seconds": 1,
    "processes": 1,
}


# -- the publisher and the service --------------------------------------------------------


@contextmanager
def replaying(
    nginx: NginxRtmp, copies: int, work: Path, *, clip: Path = CLIP, name: str = "lat"
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`streamguard replay` of ``copies`` looping copies of ``clip`` to ``{name}-{n}``;
    yields the process and its send log (in ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "keyframes.jsonl"
    log.unlink(missing_ok=True)  # the publisher appends: start each run from an empty log
    command = [STREAMGUARD, "replay", str(clip), nginx.rtmp_url(name + "-{n}")]
    command += ["--copies", str(copies), "--loop", "--keyframe-log", str(log)]
    # Every copy ends its FLV stream cleanly on SIGTERM.
    with started(command, work / "replay.log", stop_signal=signal.SIGTERM) as process:
        yield process, log


# The clip's flagged keyframe comes every 10 s loop: each is an incident of its own, and
# a kill does not end the watch (it would in production: the platform ends the stream).
EVERY_LOOP = "[policy]\nkeep_watching_after_kill = true\nincident_gap_s = 5\n"


@contextmanager
def running(
    streams: dict[str, str], work: Path, args: argparse.Namespace, extra: str = ""
) -> Iterator[Service]:
    """`streamguard run` watching ``streams`` (id -> URL), with its HTTP port up; ``extra``
    is more of its TOML configuration."""
    config = work / "streamguard.toml"
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{u}"\n' for i, u in streams.items())
    blocklist = args.blocklist.resolve()
    config.write_text(
        f"processes = {args.processes}\n{EVERY_LOOP}{extra}\n"
        f'[blocklist]\nfiles = ["{blocklist}"]\n{tables}'
    )
    service = Service(["--config", str(config)], work / "run.log", start_timeout_s=60)
    try:
        yield service
    finally:
        if service.stop() != 0:
            print(f"  streamguard run exited with {service.process.returncode}")


def states(service: Service) -> list[dict[str, Any]]:
    return list(service.streams().values())


def all_watching(service: Service, count: int) -> bool:
    current = states(service)
    return len(current) == count and all(s["state"] == "watching" for s in current)


def read_send_log(path: Path) -> dict[tuple[int, float], float]:
    """(copy, pts_s rounded to ms) -> sent_at, for every keyframe sent."""
    sent = {}
    with path.open() as lines:
        for line in lines:
            record = json.loads(line)
            sent[record["copy"], round(record["pts_s"], 3)] = record["sent_at"]
    return sent


def publisher_lag(path: Path, until: float) -> dict[str, float]:
    """How far behind real time the publisher sent its keyframes up to ``until``: per copy,
    sent_at - (first sent_at + pts - first pts); the median and the worst over the copies."""
    first: dict[int, tuple[float, float]] = {}
    last: dict[int, float] = {}
    with path.open() as lines:
        for line in lines:
            record = json.loads(line)
            if record["sent_at"] > until:
                continue
            start = first.setdefault(record["copy"], (record["sent_at"], record["pts_s"]))
            last[record["copy"]] = record["sent_at"] - start[0] - (record["pts_s"] - start[1])
    lags = list(last.values()) or [0.0]
    return {"median": round(statistics.median(lags), 3), "max": round(max(lags), 3)}


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()


def copy_of(stream_id: str) -> int:
    """``rtmp-3`` and ``rtmp-3-7`` (subscriber 7 of copy 3) both watch copy 3."""
    return int(stream_id.split("-")[1])


def hls_pts_offset(events: list[dict[str, Any]], sent: dict[tuple[int, float], float]) -> float:
    """How far nginx's HLS timestamps are ahead of the RTMP ones: the median distance from
    each HLS event's pts back to the last keyframe sent to that copy at or before it."""
    pts_by_copy: dict[int, list[float]] = defaultdict(list)
    for copy, pts in sent:
        pts_by_copy[copy].append(pts)
    gaps = []
    for event in events:
        pts = event["frame"]["pts_s"]
        earlier = [p for p in pts_by_copy[copy_of(event["stream_id"])] if p <= pts + 0.001]
        if earlier:
            gaps.append(pts - max(earlier))
    if not gaps:
        raise ValueError("no HLS event matches a keyframe sent")
    return round(statistics.median(gaps), 3)


@dataclass
class Joined:
    latency_s: list[float]  # detected_at - sent_at
    transport_s: list[float]  # frame.received_at - sent_at
    service_ms: list[float]  # the event's own latency_ms (arrival -> decision)
    unmatched: int  # events without a keyframe sent at their pts


def join(
    events: list[dict[str, Any]],
    sent: dict[tuple[int, float], float],
    *,
    pts_offset: float = 0.0,
    sent_from: float = 0.0,
    sent_until: float = float("inf"),
) -> Joined:
    """Each event with its frame's send time, on (copy, pts - pts_offset), keeping the frames
    sent in [sent_from, sent_until]. A frame between keyframes (guard samples those) went
    out its distance from the keyframe before it after that one: replay paces in real time."""
    joined = Joined([], [], [], 0)
    keyframes: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for (copy, pts), at in sent.items():
        keyframes[copy].append((pts, at))
    for copy in keyframes:
        keyframes[copy].sort()
    for event in events:
        copy, pts = copy_of(event["stream_id"]), round(event["frame"]["pts_s"] - pts_offset, 3)
        sent_at = sent.get((copy, pts))
        if sent_at is None:
            before = [k for k in keyframes[copy] if pts - GOP_S < k[0] < pts]
            sent_at = before[-1][1] + pts - before[-1][0] if before else None
        if sent_at is None:
            joined.unmatched += 1
        elif sent_from <= sent_at <= sent_until:
            joined.latency_s.append(epoch(event["detected_at"]) - sent_at)
            joined.transport_s.append(epoch(event["frame"]["received_at"]) - sent_at)
            joined.service_ms.append(event["latency_ms"])
    return joined


def segment_durations(nginx: NginxRtmp, name: str) -> list[float]:
    """The #EXTINF durations in the stream's current HLS playlist."""
    with urllib.request.urlopen(nginx.hls_url(name), timeout=5) as reply:
        playlist = reply.read().decode()
    return [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", playlist)]


def flagged(pts_s: float) -> bool:
    return abs((pts_s - FLAGGED_AT_S) % LOOP_S) < 0.01


# -- 1. latency ---------------------------------------------------------------------------


def bench_latency(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """K copies over RTMP and HLS in one `run`; latency of every detection in the window."""
    copies = args.latency_copies
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx"))
        _, send_log = stack.enter_context(replaying(nginx, copies, work))
        names = [f"lat-{n}" for n in range(copies)]
        wait_until(lambda: set(names) <= nginx.published(), 30, "all copies published")
        # A playlist appears once its first fragment is closed.
        wait_until(lambda: all(segment_durations(nginx, n) for n in names), 30, "HLS playlists")
        streams = {f"rtmp-{n}": nginx.rtmp_url(f"lat-{n}") for n in range(copies)}
        streams |= {f"hls-{n}": nginx.hls_url(f"lat-{n}") for n in range(copies)}
        service = stack.enter_context(running(streams, work, args, args.config))
        wait_until(lambda: all_watching(service, len(streams)), 60, "all streams watching")
        window_from = time.time()
        print(f"latency: {len(streams)} streams watching; measuring {args.latency_seconds} s")
        measure_window(args.latency_seconds, "latency window", lambda: len(service.events))
        window_until = time.time()
        segments = [d for n in names for d in segment_durations(nginx, n)]
        time.sleep(GOP_S * 2 + 2)  # the last flagged keyframes' HLS segments close and arrive
        final = states(service)
        events = list(service.events)
    sent = read_send_log(send_log)
    window = {"sent_from": window_from, "sent_until": window_until}
    rtmp_events = [e for e in events if e["stream_id"].startswith("rtmp-")]
    hls_events = [e for e in events if e["stream_id"].startswith("hls-")]
    offset = hls_pts_offset(hls_events, sent)
    rtmp = join(rtmp_events, sent, **window)
    hls = join(hls_events, sent, pts_offset=offset, **window)
    flagged_sent = sum(
        1 for (_, pts), at in sent.items() if flagged(pts) and window_from <= at <= window_until
    )
    return {
        "copies": copies,
        "window_s": round(window_until - window_from, 1),
        "flagged_keyframes_sent": flagged_sent,
        "hls_fragment": HLS_FRAGMENT,
        "hls_segment_s": dict(Counter(round(d, 3) for d in segments)),
        "hls_pts_offset_s": offset,
        "frames_dropped": sum(s["frames_dropped"] for s in final),
        "live_edge_skips": sum(s["live_edge_skips"] for s in final),
        **{
            name: {
                "latency_s": percentiles(part.latency_s),
                "transport_s": percentiles(part.transport_s),
                "service_latency_ms": percentiles(part.service_ms),
                "unmatched_events": part.unmatched,
            }
            for name, part in (("rtmp", rtmp), ("hls", hls))
        },
    }


# -- 2. scale -----------------------------------------------------------------------------


def counters(states: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    keys = ("frames_sampled", "frames_dropped", "live_edge_skips", "reconnects", "detections")
    return {s["stream_id"]: {k: s[k] for k in keys} for s in states}


def bench_scale(args: argparse.Namespace, count: int, seconds: float, work: Path) -> dict[str, Any]:
    """``count`` RTMP copies watched by one `run`; figures over a ``seconds`` window."""
    work.mkdir(parents=True, exist_ok=True)
    subscribers = args.subscribers
    published = -(-count // subscribers)
    result: dict[str, Any] = {"streams": count, "published": published}
    with ExitStack() as stack:
        # Only RTMP is played here: HLS muxing would only take CPU from the others.
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False))
        replay, send_log = stack.enter_context(replaying(nginx, published, work))
        names = {f"lat-{n}" for n in range(published)}
        # Each RTMP handshake holds the publisher's GIL ~0.18 s: copies connect one by one.
        result["all_published_s"] = round(
            wait_until(lambda: names <= nginx.published(), 30 + 0.5 * count, "all published", 1),
            1,
        )
        # With --subscribers K, nginx fans each published copy out to K separate connections:
        # streamguard's work per stream is the same, the publisher's is K times smaller.
        streams = {
            f"rtmp-{i % published}-{i // published}": nginx.rtmp_url(f"lat-{i % published}")
            for i in range(count)
        }
        service = stack.enter_context(running(streams, work, args, args.config))
        result["all_watching_s"] = round(
            wait_until(lambda: all_watching(service, count), 60 + 0.3 * count, "all watching", 1),
            1,
        )
        measure_window(args.warmup_seconds, f"scale N={count}: warm-up")
        trees = {
            "streamguard": service.process.pid,
            "replay": replay.pid,
            "nginx": nginx.process.pid,
        }
        before_states = counters(states(service))
        cpu_before = {name: tree_cpu_s(pid) for name, pid in trees.items()}
        busy_before = machine_busy()
        window_from = time.time()
        print(f"scale N={count}: all watching; measuring {seconds} s")
        measure_window(seconds, f"scale N={count}", lambda: len(service.events))
        window_until = time.time()
        cpu_after = {name: tree_cpu_s(pid) for name, pid in trees.items()}
        busy_after = machine_busy()
        after = states(service)
        result["memory"] = {name: tree_memory_mb(pid) for name, pid in trees.items()}
        result["loadavg_1m"] = os.getloadavg()[0]
        if args.py_spy and count == max(args.streams):
            result["py_spy"] = profile(service.process.pid, args.py_spy_seconds, work)
        time.sleep(GOP_S + 1)  # the last keyframes of the window are decided
        events = list(service.events)
    seconds = window_until - window_from
    cpu = {name: cpu_after[name] - cpu_before[name] for name in trees}
    result["window_s"] = round(seconds, 1)
    result["cpu_s"] = {name: round(value, 2) for name, value in cpu.items()}
    result["cpu_s_per_stream_s"] = round(cpu["streamguard"] / (count * seconds), 5)
    busy = busy_after[0] - busy_before[0]
    result["machine_busy_pct"] = round(100 * busy / (busy_after[1] - busy_before[1]), 1)
    result["states"] = dict(Counter(s["state"] for s in after))
    after_counters = counters(after)
    sums = {
        key: sum(after_counters[i][key] - before_states[i][key] for i in after_counters)
        for key in ("frames_sampled", "frames_dropped", "live_edge_skips", "reconnects")
    }
    result.update(sums)
    sent = read_send_log(send_log)
    sent_in_window: Counter[int] = Counter(
        copy for (copy, _), at in sent.items() if window_from <= at <= window_until
    )
    result["keyframes_sent"] = sum(sent_in_window[copy_of(i)] for i in after_counters)
    result["publisher_lag_s"] = publisher_lag(send_log, window_until)
    # Window edges: a keyframe sent just before the window may be sampled in it, and one
    # sent at its end after it, so each stream may be off by one either way.
    short = {
        i: sent_in_window[copy_of(i)]
        - (after_counters[i]["frames_sampled"] - before_states[i]["frames_sampled"])
        for i in after_counters
    }
    result["streams_missing_keyframes"] = sum(1 for gap in short.values() if gap > 1)
    result["keyframes_missing"] = sum(gap for gap in short.values() if gap > 1)
    joined = join(events, sent, sent_from=window_from, sent_until=window_until)
    flagged_sent = sum(
        1 for (_, pts), at in sent.items() if flagged(pts) and window_from <= at <= window_until
    )
    result["flagged_keyframes_sent"] = flagged_sent * count // published
    result["latency_s"] = percentiles(joined.latency_s)
    result["transport_s"] = percentiles(joined.transport_s)
    result["service_latency_ms"] = percentiles(joined.service_ms)
    return result


def profile(pid: int, seconds: float, work: Path, top: int = 20) -> dict[str, Any]:
    """py-spy samples of the `run` tree: the top frames by own time and the ``top`` Python
    functions including callees, as shares of the busy samples.

    Without pausing the processes (``--nonblocking``), so Python frames only: pausing 200+
    threads for native stacks on a saturated machine did not finish in 80 s.
    """
    if not PY_SPY.exists():
        return {"error": f"{PY_SPY} not found (pip install py-spy)"}
    raw = work / "py-spy.txt"
    command = [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    command += ["--rate", "50", "--duration", str(int(seconds))]
    command += ["--format", "raw", "--output", str(raw)]
    print(f"  py-spy for {seconds:.0f} s")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return {"error": f"py-spy did not finish within {seconds + 60:.0f} s"}
    if done.returncode != 0 or not raw.exists():
        return {"error": done.stderr.strip()[-500:]}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        samples = int(count)
        total += samples
        own[_short(frames[-1])] += samples
        for name in {_short(f) for f in frames}:
            inclusive[name] += samples
    share = {"samples": total}
    share["own"] = [(name, round(100 * n / total, 1)) for name, n in own.most_common(15)]
    share["inclusive"] = [
        (name, round(100 * n / total, 1))
        for name, n in inclusive.most_common()
        if name.endswith(".py)")
    ][:top]
    return share


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (package/file.py)``."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


# -- output -------------------------------------------------------------------------------


def blocklist_counts(path: Path) -> dict[str, int]:
    """Entries per algorithm of a CSV blocklist."""
    with path.open() as lines:
        return dict(Counter(line.split(",", 1)[0] for line in list(lines)[1:] if line.strip()))


def spread(p: dict[str, Any], scale: float = 1.0) -> list[Any]:
    """count, p50, p95, p99, max of a percentiles() result."""
    keys = ("p50", "p95", "p99", "max")
    return [p["count"], *(None if p[k] is None else round(p[k] * scale, 3) for k in keys)]


def latency_section(lat: dict[str, Any]) -> list[str]:
    segments = ", ".join(f"{n} x {float(d):g} s" for d, n in lat["hls_segment_s"].items())
    rows = []
    for path in ("rtmp", "hls"):
        part, name = lat[path], path.upper()
        rows.append([f"{name}: sent → decided (s)", *spread(part["latency_s"])])
        rows.append([f"{name}: sent → read by streamguard (s)", *spread(part["transport_s"])])
        rows.append(
            [
                f"{name}: event `latency_ms`, read → decided (s)",
                *spread(part["service_latency_ms"], 0.001),
            ]
        )
    return [
        f"### Detection latency: {lat['copies']} copies, each watched over RTMP and over "
        f"nginx's HLS, one `run`, {lat['window_s']:.0f} s",
        "",
        *table(["path", "detections", "p50", "p95", "p99", "max"], rows),
        "",
        f"{lat['flagged_keyframes_sent']} flagged keyframes were sent per path in the window; "
        f"events not joined to a sent keyframe: RTMP {lat['rtmp']['unmatched_events']}, "
        f"HLS {lat['hls']['unmatched_events']}; frames dropped {lat['frames_dropped']}, "
        f"live-edge skips {lat['live_edge_skips']}.",
        "",
        f"HLS: nginx `hls_fragment {lat['hls_fragment']}`; fragments are cut at keyframes, so "
        f"the playlists held segments of {segments}. nginx-rtmp writes MPEG-TS timestamps "
        f"{lat['hls_pts_offset_s']:g} s after the RTMP ones. The offset is found, not assumed: "
        "for each HLS event, the distance from its pts back to the last keyframe sent to that "
        "copy at or before it; the median is the offset, and each HLS event is then joined on "
        "(copy, pts - offset) to the ms, like the RTMP ones. A keyframe is only read over HLS "
        "once its segment is closed (at the next keyframe, 2 s later) and FFmpeg's HLS reader "
        "has reloaded the playlist, hence ~1 segment + reload interval.",
    ]


def scale_section(steps: list[dict[str, Any]], baseline: dict[str, Any] | None) -> list[str]:
    done = [s for s in steps if "error" not in s]
    resources, quality = [], []
    for s in done:
        n, window = s["streams"], s["window_s"]
        memory = s["memory"]["streamguard"]
        net = None
        if baseline and n > baseline["streams"]:
            base = baseline["memory"]["streamguard"]["pss_mb"]
            net = round((memory["pss_mb"] - base) / (n - baseline["streams"]), 2)
        resources.append(
            [
                n,
                round(s["cpu_s_per_stream_s"], 4),
                round(s["cpu_s"]["streamguard"] / window, 2),
                round(memory["rss_mb"]),
                round(memory["pss_mb"]),
                round(memory["pss_mb"] / n, 1),
                net,
                round(s["cpu_s"]["replay"] / window, 2),
                round(s["cpu_s"]["nginx"] / window, 2),
                round(s["machine_busy_pct"]),
                round(s["loadavg_1m"], 1),
            ]
        )
        lat = s["latency_s"]
        quality.append(
            [
                n,
                f"{s['all_published_s']:g} / {s['all_watching_s']:g}",
                s["publisher_lag_s"]["max"],
                f"{s['keyframes_sent']} / {s['frames_sampled']}",
                f"{s['keyframes_missing']} ({s['streams_missing_keyframes']})",
                s["frames_dropped"],
                s["live_edge_skips"],
                s["reconnects"],
                f"{lat['count']} / {s['flagged_keyframes_sent']}",
                lat["p50"],
                lat["p95"],
                lat["p99"],
                lat["max"],
            ]
        )
    lines = [
        "### Scale: N RTMP streams, one `run`",
        "",
        "Per N: a fresh nginx (HLS off: only RTMP is played), one `streamguard replay "
        "--copies N --loop` process, then `streamguard run` (default `processes = 0`: one "
        "worker process per core) with the N streams; the window starts after /stat shows "
        "all N published, /streams shows all N `watching`, and a warm-up. CPU is utime + "
        "stime from /proc of each process tree (parent and all descendants) over the window; "
        "memory is at the window's end: RSS summed over the tree, and PSS (shared pages split "
        "between the processes, so the parent and the workers' shared libraries are not "
        f"counted twice). The N = {baseline['streams'] if baseline else '-'} row is the "
        "baseline: one stream per worker process.",
        "",
        *table(
            [
                "N",
                "`run` CPU s per stream-second",
                "`run` cores",
                "`run` RSS MB",
                "`run` PSS MB",
                "PSS MB / stream",
                "PSS MB / stream net of baseline",
                "publisher cores",
                "nginx cores",
                "machine busy %",
                "load 1 min",
            ],
            resources,
        ),
        "",
        *table(
            [
                "N",
                "all published / all watching after (s)",
                "publisher behind real time (s, worst copy)",
                "keyframes sent / sampled",
                "keyframes missing (streams)",
                "frames dropped",
                "live-edge skips",
                "reconnects",
                "detections / flagged sent",
                "latency p50 (s)",
                "p95",
                "p99",
                "max",
            ],
            quality,
        ),
        "",
        "Keyframes missing: per stream, keyframes sent in the window minus keyframes sampled "
        "in it, counted when above 1 (window edges); frames dropped (newest-frame queue) and "
        "live-edge skips are the /streams counters' increase over the window.",
    ]
    for s in steps:
        if "error" in s:
            lines += ["", f"N = {s['streams']}: not measured: {s['error']}."]
    return lines


def profile_section(steps: list[dict[str, Any]]) -> list[str]:
    for s in steps:
        spy = s.get("py_spy")
        if not spy:
            continue
        if "error" in spy:
            return ["", f"py-spy at N = {s['streams']} failed: {spy['error']}."]
        return [
            "",
            f"### Where `run`'s CPU goes at N = {s['streams']} (py-spy, native frames, "
            f"{spy['samples']:,} busy samples of all threads of all processes)",
            "",
            *table(["frame, own time", "% of samples"], spy["own"]),
            "",
            *table(["Python function, including callees", "% of samples"], spy["inclusive"]),
        ]
    return []


def markdown(results: dict[str, Any]) -> str:
    """The results section for BENCHMARKS.md."""
    m = results["machine"]
    blocklist = os.path.relpath(results["blocklist"]["file"], ROOT)
    entries = ", ".join(f"{n} {algo}" for algo, n in results["blocklist"]["entries"].items())
    lines = [
        "## Live detection latency and scale (`streamguard run` behind nginx-rtmp)",
        "",
        f"`{results['command']}` ({results['runtime_s']['total'] / 60:.0f} min).",
        "",
        f"**Machine:** {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}, Python "
        f"{m['python']}, PyAV {m['pyav']}, nginx {m['nginx']} with libnginx-mod-rtmp. nginx, "
        "the publisher and `streamguard run` share the 2 cores, on loopback.",
        "",
        "Streams are copies of `streamguard/samples/clips/flagged_720p.mp4` (1280x720, 30 fps, "
        "H.264, a keyframe every 2 s, 0.7 Mbit/s) published by `streamguard replay --loop "
        "--keyframe-log` (stream copy, real time). The flagged picture is on the keyframe at "
        "4 s of each 10 s loop, so each copy gives one incident, one event, every 10 s. "
        f"Blocklist `{blocklist}` ({entries}): each keyframe gets every hash the blocklist has "
        "entries for. Latency is the event's `detected_at` minus the "
        "`sent_at` the publisher logged for that keyframe, joined on (copy, pts); only "
        "keyframes sent inside the window count.",
    ]
    if "latency" in results:
        lines += ["", *latency_section(results["latency"])]
    if "scale" in results:
        steps = results["scale"]
        baseline = next((s for s in steps if s["streams"] == BASELINE_STREAMS), None)
        rest = [s for s in steps if s is not baseline]
        if baseline and "error" in baseline:
            baseline = None
        lines += ["", *scale_section([*([baseline] if baseline else []), *rest], baseline)]
        lines += profile_section(steps)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="latency,scale", help="latency, scale or both")
    parser.add_argument("--latency-copies", type=int, default=10, metavar="K")
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument(
        "--streams",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[50, 100, 200],
        help="N for the scale part, comma-separated (default 50,100,200)",
    )
    parser.add_argument("--seconds", type=float, default=60, help="scale window per N")
    parser.add_argument("--warmup-seconds", type=float, default=10)
    parser.add_argument("--baseline-seconds", type=float, default=20, help="window for N=2")
    parser.add_argument("--blocklist", type=Path, default=BLOCKLIST, help="for `run`")
    parser.add_argument("--processes", type=int, default=0, help="`run` processes; 0 = per core")
    parser.add_argument(
        "--subscribers",
        type=int,
        default=1,
        help="scale: streams watching each published copy (nginx fans out; lighter publisher)",
    )
    parser.add_argument(
        "--config",
        default="",
        metavar="TOML",
        help="more of run's configuration, e.g. '[sampling]\\nmode = \"keyframes\"'",
    )
    parser.add_argument("--py-spy", action="store_true", help="profile the largest N after it")
    parser.add_argument("--py-spy-seconds", type=float, default=20)
    args = parse(parser, SMOKE, "live")
    if args.render:
        publish(args, "live", saved(args.out, "live"), markdown)
        return
    parts = set(args.parts.split(","))
    work = (args.out / "live").resolve()  # logs and nginx roots; nginx needs absolute paths

    # A publisher and a reader socket per stream, plus the publisher's input files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: dict[str, Any] = {
        "command": invocation(),
        "blocklist": {"file": str(args.blocklist), "entries": blocklist_counts(args.blocklist)},
        "machine": machine("pyav", "nginx"),
        "nofile": [soft, hard],
        "runtime_s": {},
    }
    started_at = time.monotonic()
    if "latency" in parts:
        results["latency"] = bench_latency(args, work / "latency")
        results["runtime_s"]["latency"] = round(time.monotonic() - started_at, 1)
        print(json.dumps(results["latency"], indent=1))
    if "scale" in parts:
        results["scale"] = []
        # The baseline: one stream per `run` process (2 on 2 cores), for memory net of them.
        for count in [BASELINE_STREAMS, *args.streams]:
            step_at = time.monotonic()
            seconds = args.baseline_seconds if count == BASELINE_STREAMS else args.seconds
            try:
                step = bench_scale(args, count, seconds, work / f"scale-{count}")
            except TimeoutError as exc:
                if args.smoke:
                    raise
                step = {"streams": count, "error": str(exc)}
            step["runtime_s"] = round(time.monotonic() - step_at, 1)
            results["scale"].append(step)
            print(json.dumps(step, indent=1))
    results["runtime_s"]["total"] = round(time.monotonic() - started_at, 1)
    publish(args, "live", results, markdown)


if __name__ == "__main__":
    main()
