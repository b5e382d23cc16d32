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
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import OUT, ROOT, parse
from streamguard.samples import SAMPLES_DIR

SMOKE = {"entries": 1000, "repeat": 1, "clip": SAMPLES_DIR / "clips" / "clean_360p.flv"}


def cpu_seconds(command: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best_cpu(command: list[str], repeat: int) -> float:
    return min(cpu_seconds(command) for _ in range(repeat))


def inner_scan_cpu(mode: str, blocklist: Path, cut: Path, clip: Path) -> None:
    """Print the CPU seconds of scanning ``clip`` after start-up (run in a fresh process);
    guard's probes seeded, so that runs decode the same frames."""
    from streamguard.blocklist.memory import Blocklist
    from streamguard.cli.frames import frames_of
    from streamguard.config.sampling import Sampling
    from streamguard.detect.matcher import FrameMatcher

    matcher = FrameMatcher(Blocklist.from_files([blocklist])[0])

    def scan(source: Path) -> None:
        for frame in frames_of(str(source), Sampling.parse(mode), rng=random.Random(7)):
            matcher(frame)

    scan(cut)
    before = resource.getrusage(resource.RUSAGE_SELF)
    scan(clip)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def streamguard_net_cpu(inputs: dict[str, Path], repeat: int, mode: str) -> float:
    command = [sys.executable, "-m", "bench.bench_scan", "--inner", mode]
    command += [str(inputs[k]) for k in ("pdq_list", "cut", "clip")]
    runs = [
        subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        for _ in range(repeat)
    ]
    return min(float(run.stdout) for run in runs)


def make_inputs(directory: Path, clip: Path | None, entries: int, seed: int) -> dict[str, Path]:
    """The clip (by default a 60 s 720p one, made once), its cut and the blocklists."""
    directory.mkdir(parents=True, exist_ok=True)
    if clip is None:
        clip = directory / "bench_60s_720p.mp4"
        if not clip.exists():
            make = [sys.executable, str(ROOT / "samples" / "make_samples.py"), "--bench-clip"]
            subprocess.run([*make, str(clip)], check=True)
    cut = directory / f"{clip.stem}_cut{clip.suffix}"
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
    pdq_list, phash_list = directory / f"pdq_{entries}.csv", directory / f"phash_{entries}.txt"
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
    parser.add_argument("--clip", type=Path, help="default: a 60 s 720p clip made in --out")
    parser.add_argument("--out", type=Path, default=OUT, help="inputs and scan.json")
    parser.add_argument("--inner", nargs=4, help=argparse.SUPPRESS)
    args = parse(parser, SMOKE)
    if args.inner:
        mode, *paths = args.inner
        inner_scan_cpu(mode, *map(Path, paths))
        return
    inputs = make_inputs(args.out, args.clip, args.entries, args.seed)
    streamguard = [
        sys.executable,
        "-m",
        "streamguard",
        "scan",
        "--sample",
        "keyframes",
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
            streamguard_net_cpu(inputs, args.repeat, "keyframes")
            if name == "streamguard scan"
            else full - startup
        )
        results[name] = {"cpu_s": full, "startup_cpu_s": startup, "net_cpu_s": net}
        print(
            f"{name:28s} cpu {full:7.3f} s  start-up {startup:6.3f} s  net {net:7.3f} s"
            f"  ({time.perf_counter() - started:.0f} s wall)",
            flush=True,
        )
    guard = streamguard_net_cpu(inputs, args.repeat, "guard")
    results["streamguard scan, guard (probes seeded)"] = {"net_cpu_s": guard}
    print(f"{'streamguard scan, guard':28s} net {guard:7.3f} s (probes seeded)", flush=True)
    ours = results["streamguard scan"]["net_cpu_s"]
    floor = results["ffmpeg -skip_frame nokey"]["net_cpu_s"]
    baseline = results["naive (OpenCV+imagehash)"]["net_cpu_s"]
    summary = {"streamguard / ffmpeg": ours / floor, "naive / streamguard": baseline / ours}
    print(f"streamguard / ffmpeg keyframe decode = {ours / floor:.2f} (target <= 1.5)")
    print(f"naive / streamguard = {baseline / ours:.1f}x (target >= 15)")
    (args.out / "scan.json").write_text(
        json.dumps({"results": results, "summary": summary}, indent=2)
    )


if __name__ == "__main__":
    main()
