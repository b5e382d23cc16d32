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
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamguard.cli.eval_cmd import options_of  # noqa: E402
from streamguard.cli.options import thresholds  # noqa: E402
from streamguard.evaluation.quality import publish  # noqa: E402
from streamguard.evaluation.record import recorded_evaluation  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "out" / "quality")
    parser.add_argument("--footage-minutes", type=float, default=30.0)
    parser.add_argument("--crops", type=int, default=40, help="random crops per picture")
    parser.add_argument("--images", type=Path, help="positives (default: scikit-image's)")
    parser.add_argument("--negatives", type=Path)
    parser.add_argument("--thresholds", type=thresholds, default={})
    parser.add_argument("--docs", action="store_true", help="copy the plots to docs/img/")
    args = parser.parse_args()
    if args.images is None:
        try:
            import skimage  # noqa: F401
        except ImportError:
            parser.error("needs scikit-image: pip install 'streamguard[quality]' (or --images DIR)")

    command = "python bench/bench_quality.py " + " ".join(sys.argv[1:])
    report = recorded_evaluation(options_of(args), command, ROOT)
    plots = publish(report, args.output)
    if args.docs:
        for plot in plots or []:
            shutil.copy(plot, ROOT / "docs" / "img" / plot.name)


if __name__ == "__main__":
    main()
