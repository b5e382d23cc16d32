"""Detection quality (issue 8): recall under what re-uploaders do, and false positives.

The full run of ``streamguard eval``: scikit-image's bundled sample pictures as the
blocklist, 30 transformations each encoded with H.264 and read back through the
production sampler, over 100,000 comparisons with other pictures, random crops of them
and 30 minutes of generated benign footage. Plain PDQ and pHash side by side with
streamguard's matcher (bars removed, PDQ in 8 orientations), with hash-only entries and
with entries made from the images (``blocklist add-image --variants``).

Needs ``pip install 'streamguard[quality]'`` (scikit-image, matplotlib) and Debian's
ffmpeg (for the footage). Writes bench/out/quality/quality.{json,md} and the plots;
``--docs`` copies the plots to docs/img/. About 5 minutes on 2 cores; generated footage
is cached in bench/out/quality/cache/.
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import pdqhash  # noqa: E402

from streamguard.evaluation.commands import options_of, parse_thresholds  # noqa: E402
from streamguard.evaluation.evaluate import evaluate  # noqa: E402
from streamguard.evaluation.quality import markdown, write_report  # noqa: E402

WATCHED = (
    "streamguard/detect",
    "streamguard/evaluation",
    "streamguard/hashing",
    "streamguard/blocklist/variants.py",
    "streamguard/ingest",
)


def git(*command: str) -> str:
    result = subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip()


def machine() -> dict[str, str]:
    model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    try:
        import skimage

        skimage_version = skimage.__version__
    except ImportError:
        skimage_version = "not installed"
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return {
        "cpu": f"{os.cpu_count()} x {model.group(1) if model else '?'}",
        "memory_gib": f"{int(memory.group(1)) / 2**20:.0f}" if memory else "?",
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg_in_pyav": av.ffmpeg_version_info,
        "ffmpeg_cli": ffmpeg.split()[2] if ffmpeg else "?",
        "numpy": np.__version__,
        "pdqhash": getattr(pdqhash, "__version__", "?"),
        "scikit_image": skimage_version,
        "kernel": platform.release(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "out" / "quality")
    parser.add_argument("--footage-minutes", type=float, default=30.0)
    parser.add_argument("--crops", type=int, default=40, help="random crops per picture")
    parser.add_argument("--images", type=Path, help="positives (default: scikit-image's)")
    parser.add_argument("--negatives", type=Path)
    parser.add_argument("--thresholds", type=parse_thresholds, default={})
    parser.add_argument("--docs", action="store_true", help="copy the plots to docs/img/")
    args = parser.parse_args()
    if args.images is None:
        try:
            import skimage  # noqa: F401
        except ImportError:
            parser.error("needs scikit-image: pip install 'streamguard[quality]' (or --images DIR)")

    started, commit = time.monotonic(), git("log", "-1", "--format=%h")
    uncommitted = git("status", "--short", "--", *WATCHED).splitlines()
    options = options_of(args)
    report = evaluate(options)
    command = "python bench/bench_quality.py " + " ".join(sys.argv[1:])
    report["bench"] = {
        "command": command.strip(),
        "commit": commit,  # the code that ran: modules are imported before this point
        "uncommitted": uncommitted,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    if git("log", "-1", "--format=%h") != commit:
        print(f"note: HEAD moved during the run; the results are for {commit}", file=sys.stderr)
    json_path, md_path, plots = write_report(report, args.output)
    bench = report["bench"]
    m = bench["machine"]
    dirty = ", ".join(line.split(maxsplit=1)[1] for line in bench["uncommitted"]) or "none"
    header = (
        f"`{bench['command']}`: commit {bench['commit']} (uncommitted: {dirty}), "
        f"{bench['date']}, {bench['wall_s'] / 60:.1f} min wall "
        f"({report['timings_s']['cpu_s'] / 60:.1f} min CPU in the evaluating process). "
        f"Machine: {m['cpu']}, {m['memory_gib']} GiB, Python {m['python']}, PyAV {m['pyav']} "
        f"(FFmpeg {m['ffmpeg_in_pyav']}), ffmpeg {m['ffmpeg_cli']}, numpy {m['numpy']}, "
        f"scikit-image {m['scikit_image']}."
    )
    md_path.write_text(header + "\n\n" + markdown(report))
    print(header + "\n")
    print(markdown(report))
    if plots and args.docs:
        for plot in plots:
            shutil.copy(plot, ROOT / "docs" / "img" / plot.name)
    written = [json_path, md_path, *(plots or [])]
    print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)


if __name__ == "__main__":
    main()
