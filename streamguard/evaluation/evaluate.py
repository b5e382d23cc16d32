"""``streamguard eval``: how well matching survives what re-uploaders and streamers do
to a picture, and what it costs in false positives (issue 8; docs/detection-quality.md).

Every picture of the corpus is transformed (transforms.py), encoded into a
real H.264 clip and read back through the production sampler (corpus.py), so
each hash comes from decoded video luma exactly as in production. Each decoded frame
is looked at by ``frame_hashes`` (the lookups the matcher makes) and compared by brute
force with every entry, which gives distance distributions as well as recall. The
same frames go through ``FrameMatcher`` and the default ``Policy`` (what a stream
would lead to: kill, review or nothing), and that production path is checked against
the brute force (observation.py).

Negatives are every comparison of a frame with an entry made from another picture:
the other pictures' transformed frames, random crops of them, and benign footage.

This module runs those phases in turn and times them; summary.py makes the report.
"""

import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.errors import StreamguardError
from streamguard.evaluation import corpus
from streamguard.evaluation.corpus import Encoding, Footage, Picture
from streamguard.evaluation.observation import Evaluation
from streamguard.evaluation.options import Options
from streamguard.evaluation.pictures import check_pictures, choose_pictures
from streamguard.evaluation.summary import summarise
from streamguard.evaluation.transforms import TRANSFORMS, random_crop
from streamguard.samples import SAMPLES_DIR

CROP_SIZES = ((640, 360), (854, 480), (1280, 720))


def evaluate(options: Options) -> dict[str, Any]:
    """Run the evaluation ``options`` ask for; its report (summary.py)."""
    started, started_cpu = time.monotonic(), time.process_time()
    options.output.mkdir(parents=True, exist_ok=True)
    pictures, corpus_name = choose_pictures(options)
    pictures = check_pictures(pictures, options.log)
    evaluation = Evaluation(pictures, options, Encoding())
    _log_corpus(evaluation, corpus_name)
    # Footage is made by ffmpeg in the background while the pictures are encoded here.
    pool = ThreadPoolExecutor(max_workers=1)
    made = _start_footage(pool, options, pictures)
    # Each phase adds its frames and its time: the report keeps the order they ran in.
    counts: Counter[str] = Counter()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=options.output, prefix="clips-") as workdir:
        _run_transforms(evaluation, pictures, Path(workdir), counts, timings)
        _run_random_crops(evaluation, pictures, Path(workdir), counts, timings)
    footage = _collect_footage(made, pool, options, timings)
    _run_footage(evaluation, footage, counts, timings)
    timings["total_s"] = time.monotonic() - started
    timings["cpu_s"] = time.process_time() - started_cpu
    return summarise(evaluation, corpus_name, footage, dict(counts), timings)


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _log_corpus(evaluation: Evaluation, corpus_name: str) -> None:
    entries = {
        f"{a}/{'images' if v else 'hashes'}": len(s.entries)
        for (a, v), s in evaluation.sets.items()
    }
    positives = len(evaluation.entry_pictures)
    evaluation.options.log(
        f"eval: {positives} positive and "
        f"{len(evaluation.pictures) - positives} negative-only pictures ({corpus_name}); "
        f"{len(TRANSFORMS)} transforms; entries {entries}"
    )


def _start_footage(
    pool: ThreadPoolExecutor, options: Options, pictures: Sequence[Picture]
) -> list[Future[Footage]]:
    """The benign footage asked for, each clip made (or found in the cache) by ``pool``."""
    minutes = options.footage_minutes
    seconds = 60 * (minutes if minutes is not None else (0.2 if options.quick else 30.0))
    jobs = corpus.footage_jobs(options.output / "cache" / "footage", seconds, pictures)
    return [pool.submit(corpus.make_footage, job) for job in jobs] if seconds > 0 else []


def _run_transforms(
    evaluation: Evaluation,
    pictures: Sequence[Picture],
    workdir: Path,
    counts: Counter[str],
    timings: dict[str, float],
) -> None:
    """Every picture under every transform: two keyframes of a positive (the policy may
    wait for a second), one of a negative-only picture."""
    log, seed = evaluation.options.log, evaluation.options.seed
    phase = time.monotonic()
    for index, transform in enumerate(TRANSFORMS, 1):
        items = []
        for picture in pictures:
            number = evaluation.number(picture)
            stream = evaluation.new_stream("item", number, transform.name, picture.entry)
            rgb = transform.render(picture.rgb, _rng(seed, picture.name, transform.name))
            items.append((stream, np.ascontiguousarray(rgb)))
        counts["item frames"] += evaluation.run_items(
            items, transform.bitrate, lambda s: 2 if s.positive else 1, workdir
        )
        if index % 5 == 0 or index == len(TRANSFORMS):
            log(f"eval: transforms {index}/{len(TRANSFORMS)} ({time.monotonic() - phase:.0f} s)")
    timings["transforms_s"] = time.monotonic() - phase


def _run_random_crops(
    evaluation: Evaluation,
    pictures: Sequence[Picture],
    workdir: Path,
    counts: Counter[str],
    timings: dict[str, float],
) -> None:
    """Random crops of every picture, one keyframe each: negatives, their own picture's too."""
    options = evaluation.options
    crops = options.crops_per_picture
    crops = crops if crops is not None else (3 if options.quick else 40)
    phase = time.monotonic()
    items = []
    for picture in pictures:
        rng = _rng(options.seed, picture.name, "random-crop")
        for _ in range(crops):
            width, height = CROP_SIZES[int(rng.integers(len(CROP_SIZES)))]
            stream = evaluation.new_stream("crop", evaluation.number(picture), "random-crop", False)
            items.append((stream, random_crop(picture.rgb, rng, width, height)))
    if items:
        counts["crop frames"] += evaluation.run_items(items, "std", lambda s: 1, workdir)
    timings["random_crops_s"] = time.monotonic() - phase
    options.log(f"eval: {len(items)} random crops ({timings['random_crops_s']:.0f} s)")


def _collect_footage(
    made: Sequence[Future[Footage]],
    pool: ThreadPoolExecutor,
    options: Options,
    timings: dict[str, float],
) -> list[Footage]:
    """The footage made in the background (up to the first that failed), and with
    ``--quick`` the project's clean sample clips too."""
    phase = time.monotonic()
    footage: list[Footage] = []
    for future in made:
        try:
            footage.append(future.result())
        except StreamguardError as exc:
            options.log(f"eval: {exc}; footage left out")
            break
    pool.shutdown(cancel_futures=True)
    timings["footage_wait_s"] = time.monotonic() - phase
    if options.quick:
        footage += [
            Footage(path.stem, path, None, 10.0)
            for path in sorted((SAMPLES_DIR / "clips").glob("clean_*"))
        ]
    return footage


def _run_footage(
    evaluation: Evaluation,
    footage: Sequence[Footage],
    counts: Counter[str],
    timings: dict[str, float],
) -> None:
    phase = time.monotonic()
    for clip in footage:
        counts["footage frames"] += evaluation.run_footage(clip)
    timings["footage_s"] = time.monotonic() - phase
    footage_total = sum(f.seconds for f in footage)
    evaluation.options.log(
        f"eval: {footage_total / 60:.1f} min of footage, {counts['footage frames']} frames "
        f"({timings['footage_s']:.0f} s)"
    )
