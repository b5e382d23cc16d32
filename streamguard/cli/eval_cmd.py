"""``streamguard eval``: its command line. The evaluations (``evaluate.py``, ``redteam.py``)
and their reports are imported only when the command runs: they pull in the encoders."""

import argparse
import sys
from pathlib import Path

from streamguard.cli.options import Subcommands, thresholds
from streamguard.errors import StreamguardError
from streamguard.evaluation.options import DEFAULT_OUTPUT, Options
from streamguard.samples import SAMPLES_DIR


def options_of(args: argparse.Namespace, *, quick: bool = False) -> Options:
    """The evaluation's options from the flags ``eval`` and bench/bench_quality.py share."""
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
    from streamguard.evaluation.evaluate import evaluate
    from streamguard.evaluation.quality import publish

    for flag, directory in (("--images", args.images), ("--negatives", args.negatives)):
        if directory is not None and not directory.is_dir():
            raise StreamguardError(f"{flag} {directory}: not a directory")
    for flag, number in (("--footage-minutes", args.footage_minutes), ("--crops", args.crops)):
        if number is not None and number < 0:
            raise StreamguardError(f"{flag} {number}: must not be negative")
    options = options_of(args, quick=args.quick)
    publish(evaluate(options), options.output)
    return 0


def adversarial(args: argparse.Namespace) -> int:
    """``eval --adversarial``: detected or not, time to decision and CPU of each case."""
    from streamguard.evaluation import redteam

    flagged = args.flagged or SAMPLES_DIR / "flagged" / "flagged_01.png"
    benign = args.benign or SAMPLES_DIR / "images" / "control_01.png"
    report = redteam.evaluate(
        args.output / "adversarial",
        flagged,
        benign,
        redteam.blocklist_of(flagged),
        quick=args.quick,
        trials=args.trials or (10 if args.quick else 100),
        log=lambda line: print(f"eval: {line}", file=sys.stderr),
    )
    redteam.publish(report, args.output)
    return 0 if all(case["passed"] for case in report["cases"]) else 1


def add_parser(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure detection quality: recall under common transformations, false positives",
        description=(
            "Transform pictures as re-uploaders do, encode them with H.264, read them back "
            "through the production sampler and matcher, and report recall, false positives "
            "and what the policy decides (docs/detection-quality.md)."
        ),
    )
    _add_corpus_options(parser)
    _add_report_options(parser)
    _add_adversarial_options(parser)
    parser.set_defaults(handler=cmd_eval)


def _add_corpus_options(parser: argparse.ArgumentParser) -> None:
    """What the evaluation runs on: pictures, footage and random crops."""
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="positive pictures, each an entry (default: scikit-image's bundled sample "
        "images if installed, else the bundled samples)",
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


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    """Where the reports go, and the thresholds they measure at."""
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help="where quality.md, quality.json and the plots (or adversarial.md, .json) go "
        f"(default: ./{DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--thresholds",
        type=thresholds,
        default={},
        metavar="ALGO=N,…",
        help="match thresholds (default: pdq=31,phash=10,dhash=10)",
    )


def _add_adversarial_options(parser: argparse.ArgumentParser) -> None:
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
