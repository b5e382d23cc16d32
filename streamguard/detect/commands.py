"""``streamguard eval``: its command line. The evaluation itself (``evaluate.py``) and its
report (``quality.py``) are imported only when the command runs."""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamguard.errors import StreamguardError
from streamguard.hashing import ALGORITHMS, check_distance

if TYPE_CHECKING:  # evaluate pulls in the heavy modules; eval imports it when it runs
    from streamguard.detect.evaluate import Options

DEFAULT_OUTPUT = Path("bench/out/quality")


def parse_thresholds(text: str) -> dict[str, int]:
    """``pdq=31,phash=10`` -> {"pdq": 31, "phash": 10}."""
    thresholds = {}
    for part in text.split(","):
        algo, _, value = part.strip().partition("=")
        if algo not in ALGORITHMS or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"'{part}': expected ALGO=N[,ALGO=N…], ALGO one of {list(ALGORITHMS)}"
            )
        try:
            thresholds[algo] = check_distance(algo, int(value))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"'{part}': {exc}") from None
    return thresholds


def options_of(args: argparse.Namespace, *, quick: bool = False) -> "Options":
    """The evaluation's options from the flags ``eval`` and bench/bench_quality.py share."""
    from streamguard.detect.evaluate import Options

    return Options(
        images=args.images,
        negatives=args.negatives,
        footage_minutes=args.footage_minutes,
        quick=quick,
        output=args.output,
        thresholds=args.thresholds,
        crops_per_picture=args.crops,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    if args.adversarial:
        return adversarial(args)
    from streamguard.detect.evaluate import evaluate
    from streamguard.detect.quality import markdown, write_report

    for flag, directory in (("--images", args.images), ("--negatives", args.negatives)):
        if directory is not None and not directory.is_dir():
            raise StreamguardError(f"{flag} {directory}: not a directory")
    for flag, number in (("--footage-minutes", args.footage_minutes), ("--crops", args.crops)):
        if number is not None and number < 0:
            raise StreamguardError(f"{flag} {number}: must not be negative")
    options = options_of(args, quick=args.quick)
    report = evaluate(options)
    json_path, md_path, plots = write_report(report, options.output)
    print(markdown(report))
    written = [json_path, md_path, *(plots or [])]
    print(f"eval: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    if plots is None:
        print(
            "eval: matplotlib is not installed: no plots (pip install 'streamguard[quality]')",
            file=sys.stderr,
        )
    return 0


def adversarial(args: argparse.Namespace) -> int:
    """``eval --adversarial``: detected or not, time to decision and CPU of each case."""
    import json

    from streamguard.blocklist.entry import Entry
    from streamguard.blocklist.memory import Blocklist
    from streamguard.blocklist.variants import entry_id, image_hashes
    from streamguard.detect import redteam
    from streamguard.detect.evaluate import SAMPLES_DIR
    from streamguard.hashing import ALGORITHMS, load_image_luma

    flagged = args.flagged or SAMPLES_DIR / "flagged" / "flagged_01.png"
    benign = args.benign or SAMPLES_DIR / "images" / "control_01.png"
    # The flagged picture's entries, as `blocklist add-image` makes them.
    entries = [
        Entry(h.algo, h.digest, entry_id(flagged.stem, h.algo, ""), "adversarial", "test")
        for _, h, problem in image_hashes(load_image_luma(flagged), ALGORITHMS, variants=False)
        if problem is None
    ]
    blocklist = Blocklist()
    blocklist.put(np.arange(len(entries)), entries)
    trials = args.trials or (10 if args.quick else 100)
    report = redteam.evaluate(
        args.output / "adversarial",
        flagged,
        benign,
        blocklist,
        quick=args.quick,
        trials=trials,
        log=lambda line: print(f"eval: {line}", file=sys.stderr),
    )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "adversarial.json").write_text(json.dumps(report, indent=2) + "\n")
    text = redteam.markdown(report)
    (args.output / "adversarial.md").write_text(text)
    print(text)
    print(f"eval: wrote {args.output / 'adversarial.md'}, .json", file=sys.stderr)
    return 0 if all(case["passed"] for case in report["cases"]) else 1


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure detection quality: recall under common transformations, false positives",
        description=(
            "Transform pictures as re-uploaders do, encode them with H.264, read them back "
            "through the production sampler and matcher, and report recall, false positives "
            "and what the policy decides (docs/detection-quality.md)."
        ),
    )
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="positive pictures, each an entry (default: scikit-image's bundled sample "
        "images if installed, else samples/)",
    )
    parser.add_argument(
        "--negatives", type=Path, metavar="DIR", help="more pictures that are never entries"
    )
    parser.add_argument(
        "--footage-minutes",
        type=float,
        metavar="M",
        help="benign footage to generate with ffmpeg (default: 30; 0.2 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the project's sample pictures, 3 random crops each, a few seconds of footage",
    )
    parser.add_argument(
        "--crops",
        type=int,
        metavar="N",
        help="random crops per picture (default: 40; 3 with --quick)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"where quality.md, quality.json and the plots go (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--thresholds",
        type=parse_thresholds,
        default={},
        metavar="ALGO=N,…",
        help="match thresholds (default: pdq=31,phash=10,dhash=10)",
    )
    adversary = parser.add_argument_group(
        "adversarial streams", "what a publisher who has read the code sends (docs/sampling.md)"
    )
    adversary.add_argument(
        "--adversarial",
        action="store_true",
        help="run the adversarial cases in real time instead (exit 1 if one is missed)",
    )
    adversary.add_argument(
        "--flagged", type=Path, metavar="PICTURE", help="the flagged picture (default: a sample)"
    )
    adversary.add_argument(
        "--benign", type=Path, metavar="PICTURE", help="the benign picture (default: a sample)"
    )
    adversary.add_argument(
        "--trials", type=int, metavar="N", help="keyframe-dodging trials (100; 10 with --quick)"
    )
    parser.set_defaults(handler=cmd_eval)
