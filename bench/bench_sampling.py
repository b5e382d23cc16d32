"""What guard sampling costs and what it guarantees (issue 15, docs/sampling.md).

1. decode: the decoder steps on an ordinary stream (720p30, 2 s GOP, B-frames and
   CBR as OBS sends them): keyframes alone, and a GOP decoded as a chain, with and
   without non-reference frames and the loop filter; with the PDQ drift that skipping
   the loop filter of reference frames causes. CPU per stream-second, from a file.
2. cpu: `streamguard run` on nginx-rtmp with N copies of that stream, in keyframes,
   guard and interval:1 modes one after another in one run: CPU of the run process
   tree per stream-second, side by side.
3. probability: keyframe dodging (a benign keyframe, the flagged picture on the last
   share f of every GOP): for f = 0.97, 0.5, 0.25, the share of trials (each with its
   own random numbers, as each process has) decided within 10, 20, 30 and 60 s, and the
   CPU each trial's probes cost. Through the production sampler and matcher, from files.
4. flood: K copies of the flagged clip watched by one `run`, with and without three
   publishers sending 1080p60, every frame a keyframe, at 40 Mb/s: the others' decision
   latency, and the CPU the floods cost.

Writes bench/out/sampling.json and bench/out/sampling.md.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import av
import numpy as np
from bench_live import (
    BLOCKLIST,
    CLIP,
    ROOT,
    all_watching,
    join,
    machine,
    percentiles,
    read_send_log,
    replaying,
    running,
    states,
    table,
    tree_cpu_s,
    wait_until,
)
from progress import measure_window

from streamguard.blocklist.memory import Blocklist
from streamguard.config.sampling import GuardSettings
from streamguard.evaluation import adversary, redteam
from streamguard.hashing import hash_luma
from streamguard.ingest.sampler import frame_luma
from streamguard.samples import SAMPLES_DIR
from tests.support.nginx import nginx_rtmp_server

OUT = ROOT / "bench" / "out"
MODES = ("keyframes", "guard", "interval:1")
SHARES = (0.97, 0.5, 0.25)
WITHIN_S = redteam.WITHIN_S


def ffmpeg(*args: str) -> None:
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(command, check=True, timeout=600)


def obs_clip(path: Path, seconds: float) -> Path:
    """An ordinary stream as OBS sends it: x264 veryfast, 720p30, 2 s GOP, 2 B-frames,
    4.5 Mb/s CBR; moving content (the benchmark clip of samples/make_samples.py)."""
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT / "samples"))
    from make_samples import make_bench_clip

    source = make_bench_clip(path.with_suffix(".source.mp4"), seconds)
    ffmpeg(
        *("-i", str(source), "-c:v", "libx264", "-preset", "veryfast", "-bf", "2"),
        *("-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "4500k"),
        *("-maxrate", "4500k", "-bufsize", "9000k", "-pix_fmt", "yuv420p", str(path)),
    )
    return path


def flood_clip(path: Path, seconds: float) -> Path:
    """1080p60, every frame a keyframe, 40 Mb/s: a publisher flooding the decoder."""
    if not path.exists():
        ffmpeg(
            *("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=60,noise=alls=12:allf=t"),
            *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "1"),
            *("-b:v", "40M", "-maxrate", "40M", "-bufsize", "40M", "-pix_fmt", "yuv420p"),
            str(path),
        )
    return path


# -- 1. decoder steps ---------------------------------------------------------------------


DECODE_STEPS = {
    "keyframes alone, no loop filter (keyframes and guard modes)": ("NONKEY", "all", True),
    "chain, every frame (interval mode)": ("DEFAULT", "", False),
    "chain, no loop filter": ("DEFAULT", "all", False),
    "chain, reference frames only (guard's gaps and probes)": ("NONREF", "", False),
    "chain, reference frames only, no loop filter": ("NONREF", "all", False),
}


def decode(
    path: Path, skip_frame: str, loop_filter: str, alone: bool, keep: int = 0
) -> tuple[float, dict[int, Any]]:
    """CPU ms per stream-second of decoding ``path`` so, and the luma of the first ``keep``
    frames (kept only when asked: a minute of 720p is 2.5 GB)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_type, codec.thread_count, codec.skip_frame = "SLICE", 1, skip_frame
        codec.options = {"skip_loop_filter": loop_filter} if loop_filter else {}
        frames, started = {}, time.process_time()
        for packet in container.demux(stream):
            if alone and not packet.is_keyframe:
                continue
            decoded = stream.decode(packet if packet.size else None)
            if alone:
                decoded += stream.decode(None)
                codec.flush_buffers()
            for frame in decoded:
                if len(frames) < keep:
                    frames[frame.pts] = frame_luma(frame)
            if keep and len(frames) >= keep:
                break
        cpu_s = time.process_time() - started
        seconds = float(container.duration / 1_000_000)
    return round(1000 * cpu_s / seconds, 2), frames


def bench_decode(clip: Path) -> dict[str, Any]:
    cpu = {}
    for name, (skip, loop_filter, alone) in DECODE_STEPS.items():
        cpu[name], _ = decode(clip, skip, loop_filter, alone)
        print(f"decode: {name}: {cpu[name]} ms per stream-second")
    # PDQ drift of the reference frames without the loop filter, by time into the GOP.
    _, exact = decode(clip, "NONREF", "", False, keep=600)
    _, rough = decode(clip, "NONREF", "all", False, keep=600)
    with av.open(str(clip)) as container:
        time_base = container.streams.video[0].time_base
    drift: dict[str, list[int]] = {}
    for pts, luma in exact.items():
        (a,), (b,) = hash_luma(luma, ["pdq"]), hash_luma(rough[pts], ["pdq"])
        bits = int(
            np.unpackbits(
                np.frombuffer(
                    bytes(x ^ y for x, y in zip(a.digest, b.digest, strict=True)), np.uint8
                )
            ).sum()
        )
        start = float(pts * time_base) % 2.0 // 0.5 * 0.5
        drift.setdefault(f"{start:.1f}-{start + 0.5:.1f} s", []).append(bits)
    return {
        "cpu_ms_per_stream_s": cpu,
        "pdq_drift_without_loop_filter": {
            window: {"mean": round(statistics.mean(bits), 1), "max": max(bits)}
            for window, bits in sorted(drift.items())
        },
    }


# -- 2. run's CPU per stream, by mode ----------------------------------------------------


def cpu_of_mode(
    args: argparse.Namespace, streams: dict[str, str], work: Path, sampling: str
) -> dict[str, Any]:
    """`run` over ``streams`` with ``[sampling]`` set so: CPU per stream-second."""
    work.mkdir(parents=True, exist_ok=True)
    with running(streams, work, args, f"[sampling]\n{sampling}\n") as service:
        wait_until(lambda: all_watching(service, len(streams)), 60, "all watching")
        measure_window(args.warmup_seconds, f"cpu {sampling}: warm-up")
        before, at = tree_cpu_s(service.process.pid), time.time()
        measure_window(args.seconds, f"cpu {sampling}")
        cpu_s = tree_cpu_s(service.process.pid) - before
        elapsed = time.time() - at
        final = states(service)
    return {
        "cpu_ms_per_stream_s": round(1000 * cpu_s / (elapsed * len(streams)), 2),
        "frames_sampled": sum(s["frames_sampled"] for s in final),
        "probes": sum(s.get("probes", 0) for s in final),
        "frames_dropped": sum(s["frames_dropped"] for s in final),
    }


def bench_cpu(args: argparse.Namespace, clip: Path, work: Path) -> dict[str, Any]:
    """One nginx, N looping copies of the ordinary stream; `run` in each mode in turn."""
    results: dict[str, Any] = {"streams": args.streams, "window_s": args.seconds}
    with ExitStack() as stack:
        nginx = stack.enter_context(nginx_rtmp_server(work / "nginx", hls=False))
        stack.enter_context(replaying(nginx, args.streams, work, clip=clip, name="obs"))
        names = {f"obs-{n}" for n in range(args.streams)}
        wait_until(lambda: names <= nginx.published(), 60, "all published", 1)
        streams = {name: nginx.rtmp_url(name) for name in sorted(names)}
        for round_number in range(args.rounds):
            for mode in MODES:
                key = mode if args.rounds == 1 else f"{mode} (round {round_number + 1})"
                results[key] = cpu_of_mode(args, streams, work / mode, f'mode = "{mode}"')
                print(f"cpu: {key}: {results[key]['cpu_ms_per_stream_s']} ms per stream-second")
    by_mode = {
        mode: statistics.median(
            v["cpu_ms_per_stream_s"] for k, v in results.items() if k.split(" (")[0] == mode
        )
        for mode in MODES
    }
    results["median_ms_per_stream_s"] = by_mode
    results["guard_over_keyframes"] = round(by_mode["guard"] / by_mode["keyframes"], 2)
    return results


# -- 3. detection probability of keyframe dodging -----------------------------------------


def bench_probability(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """streamguard eval --adversarial's measurement, with more trials."""
    flagged = SAMPLES_DIR / "flagged" / "flagged_01.png"
    pictures = redteam.pictures(flagged, SAMPLES_DIR / "images" / "control_01.png")
    blocklist, _ = Blocklist.from_files([BLOCKLIST])  # the sample list: none degenerate
    results = []
    for share, fade_s in [(share, fade_s) for fade_s in (0.0, 0.5) for share in SHARES]:
        case = adversary.dodge(share, seconds=args.dodge_seconds, fade_s=fade_s)
        path = adversary.write_clip(work / f"{case.name}.flv", case, *pictures)
        started = time.process_time()
        result = redteam.dodge_probability(path, case, blocklist, args.trials, GuardSettings())
        result["cpu_s_per_trial"] = round((time.process_time() - started) / args.trials, 2)
        results.append(result)
        print(f"probability: {case.name}: {result['within']}")
    return {"trials": args.trials, "clip_s": args.dodge_seconds, "cases": results}


# -- 4. floods ----------------------------------------------------------------------------


def flood_part(args: argparse.Namespace, part: Path, flood: Path, floods: int) -> dict[str, Any]:
    """The flagged clip's copies and ``floods`` flooding publishers in one `run`."""
    with ExitStack() as stack:
        nginx = stack.enter_context(nginx_rtmp_server(part / "nginx", hls=False))
        _, send_log = stack.enter_context(replaying(nginx, args.flood_streams, part))
        streams = {f"rtmp-{n}": nginx.rtmp_url(f"lat-{n}") for n in range(args.flood_streams)}
        if floods:
            stack.enter_context(replaying(nginx, floods, part / "f", clip=flood, name="flood"))
            streams |= {f"flood-{n}": nginx.rtmp_url(f"flood-{n}") for n in range(floods)}
        names = {url.rsplit("/", 1)[1] for url in streams.values()}
        wait_until(lambda: names <= nginx.published(), 60, "all published", 1)
        service = stack.enter_context(running(streams, part, args))
        wait_until(lambda: all_watching(service, len(streams)), 60, "all watching", 1)
        measure_window(args.warmup_seconds, f"flood x{floods}: warm-up")
        before, window_from = tree_cpu_s(service.process.pid), time.time()
        sampled_before = {
            i: s["frames_sampled"] for i, s in ((s["stream_id"], s) for s in states(service))
        }
        measure_window(args.seconds, f"flood x{floods}", lambda: len(service.events))
        window_until = time.time()
        cpu_s = tree_cpu_s(service.process.pid) - before
        final = {s["stream_id"]: s for s in states(service)}
        time.sleep(3)  # the window's last flagged keyframes are decided
        events = [e for e in service.events if e["stream_id"].startswith("rtmp-")]
    window_s = window_until - window_from
    joined = join(events, read_send_log(send_log), sent_from=window_from, sent_until=window_until)
    flooding = [i for i in final if i.startswith("flood-")]
    sampled = [final[i]["frames_sampled"] - sampled_before[i] for i in flooding]
    return {
        "latency_s": percentiles(joined.latency_s),
        "run_cpu_cores": round(cpu_s / window_s, 3),
        "flood_samples_per_s": round(statistics.mean(sampled) / window_s, 2) if sampled else None,
        "flood_samples_skipped": [final[i]["samples_skipped"] for i in flooding],
    }


def bench_flood(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    flood = flood_clip(work / "flood.mp4", 10.0)
    results: dict[str, Any] = {"streams": args.flood_streams, "floods": 3, "window_s": args.seconds}
    for label, floods in (("without floods", 0), ("with 3 floods", 3)):
        results[label] = flood_part(args, work / label.replace(" ", "-"), flood, floods)
        print(f"flood: {label}: {results[label]}")
    without, with_ = results["without floods"], results["with 3 floods"]
    results["p99_increase_s"] = round(with_["latency_s"]["p99"] - without["latency_s"]["p99"], 3)
    results["flood_cpu_cores"] = round(with_["run_cpu_cores"] - without["run_cpu_cores"], 3)
    return results


# -- report -------------------------------------------------------------------------------


def within(result: dict[str, Any], seconds: int) -> str:
    """Measured share decided within ``seconds`` (and the expected share)."""
    key = f"{seconds} s"
    return f"{result['decided_within'].get(key, '-')} ({result['expected_within'][key]})"


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Sampling (bench/bench_sampling.py)", "", f"Machine: {results['machine']}", ""]
    if "decode" in results:
        decode = results["decode"]
        lines += ["## Decoder steps", ""]
        lines += table(
            ["step", "CPU ms per stream-second"],
            [[k, v] for k, v in decode["cpu_ms_per_stream_s"].items()],
        )
        lines += ["", "PDQ drift of reference frames decoded without the loop filter:", ""]
        lines += table(
            ["time into the GOP", "mean bits", "max bits"],
            [[k, v["mean"], v["max"]] for k, v in decode["pdq_drift_without_loop_filter"].items()],
        )
        lines.append("")
    if "cpu" in results:
        cpu = results["cpu"]
        lines += [
            f"## run's CPU per stream ({cpu['streams']} streams, {cpu['window_s']} s windows)",
            "",
        ]
        rows = [
            [k, v["cpu_ms_per_stream_s"], v["frames_sampled"], v["probes"], v["frames_dropped"]]
            for k, v in cpu.items()
            if isinstance(v, dict) and "cpu_ms_per_stream_s" in v
        ]
        lines += table(
            ["mode", "CPU ms per stream-second", "frames sampled", "probes", "dropped"], rows
        )
        lines += ["", f"guard / keyframes: **{cpu['guard_over_keyframes']}x** (medians)", ""]
    if "probability" in results:
        prob = results["probability"]
        lines += [f"## Keyframe dodging ({prob['trials']} trials of {prob['clip_s']} s each)", ""]
        rows = [
            [
                r["case"],
                *[
                    f"{r['within'].get(f'{s} s', '-')} ({r['expected'].get(f'{s} s', '-')})"
                    for s in WITHIN_S
                ],
                r["median_s"],
                r["cpu_s_per_trial"],
            ]
            for r in prob["cases"]
        ]
        header = ["case", *[f"within {s} s (expected)" for s in WITHIN_S], "median s"]
        lines += table([*header, "CPU s to the first match"], rows)
        lines.append("")
    if "flood" in results:
        flood = results["flood"]
        lines += [f"## Floods ({flood['streams']} ordinary streams, {flood['floods']} floods)", ""]
        rows = [
            [
                k,
                v["latency_s"]["p50"],
                v["latency_s"]["p99"],
                v["run_cpu_cores"],
                v["flood_samples_per_s"],
            ]
            for k, v in flood.items()
            if isinstance(v, dict)
        ]
        lines += table(
            ["", "decision p50 s", "p99 s", "run CPU (cores)", "samples/s per flood"], rows
        )
        increase, cores = flood["p99_increase_s"], flood["flood_cpu_cores"]
        lines += ["", f"p99 increase: {increase} s; CPU of the floods: {cores} cores", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["decode", "cpu", "probability", "flood"])
    parser.add_argument("--streams", type=int, default=20, help="cpu: streams per mode")
    parser.add_argument("--rounds", type=int, default=2, help="cpu: rounds of the three modes")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=100, help="probability: trials per f")
    parser.add_argument("--dodge-seconds", type=float, default=60.0)
    parser.add_argument("--flood-streams", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--blocklist", type=Path, default=BLOCKLIST)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    work = args.output / "sampling"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine()}
    clip = obs_clip(work / "obs720.mp4", 60.0) if {"decode", "cpu"} & set(args.parts) else CLIP
    if "decode" in args.parts:
        results["decode"] = bench_decode(clip)
    if "probability" in args.parts:
        results["probability"] = bench_probability(args, work)
    if "cpu" in args.parts:
        results["cpu"] = bench_cpu(args, clip, work)
    if "flood" in args.parts:
        results["flood"] = bench_flood(args, work)
    (args.output / "sampling.json").write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    (args.output / "sampling.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
