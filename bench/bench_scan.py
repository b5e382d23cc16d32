"""CPU cost of `streamguard scan` against the decoder floor and a naive scanner.

Measures, in one run on the same machine:

- ``streamguard scan`` (keyframes, PDQ, 100k-entry blocklist) on a 60 s
  1280x720 30 fps H.264 clip with a 2 s GOP;
- ``ffmpeg -threads 1 -skip_frame nokey -i CLIP -f null -``: decoding only the
  keyframes, the floor for any keyframe scanner;
- a naive scanner: OpenCV VideoCapture decoding every frame, imagehash pHash on
  one frame per second, and a linear scan of a 100k-entry pHash list.

CPU seconds are user+sys, best of --repeat runs. Net of start-up: for ffmpeg
and the naive scanner, the same command on a one-keyframe cut of the clip is
subtracted. For streamguard, whose start-up (imports, parsing and indexing
100k entries: ~1.5 s) would drown the figure in noise that way, a fresh
process loads the blocklist exactly as `streamguard scan` does, warms up on
the cut, and measures its own CPU across the scan of the clip (`--inner`).
The whole-command CPU including start-up is reported as well.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def cpu_seconds(command: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best_cpu(command: list[str], repeat: int) -> float:
    return min(cpu_seconds(command) for _ in range(repeat))


def inner_scan_cpu(blocklist: Path, cut: Path, clip: Path) -> None:
    """Print the CPU seconds of scanning ``clip`` after start-up (run in a fresh process)."""
    from streamguard.blocklist.memory import Blocklist
    from streamguard.cli.frames import frames_of
    from streamguard.config.sampling import Sampling
    from streamguard.detect.matcher import FrameMatcher

    matcher = FrameMatcher(Blocklist.from_files([blocklist])[0])

    def scan(source: Path) -> None:
        for frame in frames_of(str(source), Sampling()):
            matcher(frame)

    scan(cut)
    before = resource.getrusage(resource.RUSAGE_SELF)
    scan(clip)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def streamguard_net_cpu(inputs: dict[str, Path], repeat: int) -> float:
    command = [
        sys.executable,
        __file__,
        "--inner",
        *(str(inputs[k]) for k in ("pdq_list", "cut", "clip")),
    ]
    runs = [
        subprocess.run(command, check=True, capture_output=True, text=True) for _ in range(repeat)
    ]
    return min(float(run.stdout) for run in runs)


def make_inputs(entries: int, seed: int) -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    clip, cut = OUT / "bench_60s_720p.mp4", OUT / "bench_cut_720p.mp4"
    if not clip.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "samples" / "make_samples.py"), "--bench-clip", str(clip)],
            check=True,
        )
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip),
            "-t",
            "0.5",
            "-c",
            "copy",
            str(cut),
        ],
        check=True,
    )
    rng = np.random.default_rng(seed)
    pdq_list, phash_list = OUT / f"pdq_{entries}.csv", OUT / f"phash_{entries}.txt"
    with pdq_list.open("w") as out:
        out.write("algo,hash,id,list,category\n")
        for number, code in enumerate(rng.integers(0, 256, (entries, 32), dtype=np.uint8)):
            out.write(f"pdq,{code.tobytes().hex()},r{number},bench,test\n")
    phash_list.write_text(
        "".join(f"{c.tobytes().hex()}\n" for c in rng.integers(0, 256, (entries, 8), np.uint8))
    )
    return {"clip": clip, "cut": cut, "pdq_list": pdq_list, "phash_list": phash_list}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--inner", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner_scan_cpu(*args.inner)
        return
    inputs = make_inputs(args.entries, args.seed)
    streamguard = [
        sys.executable,
        "-m",
        "streamguard",
        "scan",
        "--blocklist",
        str(inputs["pdq_list"]),
    ]
    ffmpeg = ["ffmpeg", "-loglevel", "error", "-threads", "1", "-skip_frame", "nokey", "-i"]
    naive = [sys.executable, str(ROOT / "bench" / "naive_scan.py"), str(inputs["phash_list"])]
    commands = {
        "streamguard scan": lambda clip: [*streamguard, str(clip)],
        "ffmpeg -skip_frame nokey": lambda clip: [*ffmpeg, str(clip), "-f", "null", "-"],
        "naive (OpenCV+imagehash)": lambda clip: [*naive, str(clip)],
    }
    results = {}
    for name, command in commands.items():
        started = time.perf_counter()
        full = best_cpu(command(inputs["clip"]), args.repeat)
        startup = best_cpu(command(inputs["cut"]), args.repeat)
        net = (
            streamguard_net_cpu(inputs, args.repeat)
            if name == "streamguard scan"
            else full - startup
        )
        results[name] = {"cpu_s": full, "startup_cpu_s": startup, "net_cpu_s": net}
        print(
            f"{name:28s} cpu {full:7.3f} s  start-up {startup:6.3f} s  net {net:7.3f} s"
            f"  ({time.perf_counter() - started:.0f} s wall)",
            flush=True,
        )
    ours = results["streamguard scan"]["net_cpu_s"]
    floor = results["ffmpeg -skip_frame nokey"]["net_cpu_s"]
    baseline = results["naive (OpenCV+imagehash)"]["net_cpu_s"]
    summary = {"streamguard / ffmpeg": ours / floor, "naive / streamguard": baseline / ours}
    print(f"streamguard / ffmpeg keyframe decode = {ours / floor:.2f} (target <= 1.5)")
    print(f"naive / streamguard = {baseline / ours:.1f}x (target >= 15)")
    (OUT / "scan.json").write_text(json.dumps({"results": results, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
