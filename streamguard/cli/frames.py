"""Sampled frames of a file or URL for the one-shot commands (hash, scan, demo)."""

import random
import sys
from collections.abc import Iterator

from tqdm import tqdm

from streamguard.cli.console import warn
from streamguard.config.sampling import Sampling
from streamguard.infra.redaction import redact
from streamguard.ingest.sampler import Frame, Pace, sample_frames
from streamguard.ingest.source import open_source, video_stream
from streamguard.ingest.stats import SampleStats


def frames_of(
    source: str,
    sampling: Sampling,
    *,
    pace: Pace | None = None,
    duration_s: float | None = None,
    stream_id: str | None = None,
    rng: random.Random | None = None,
) -> Iterator[Frame]:
    """Sampled frames of a file or URL, with a progress bar on a terminal.

    Frames carry ``stream_id``, by default the source as printed (redacted). ``rng``
    draws guard's probes (default: unpredictable; a benchmark seeds it to compare runs).
    """
    shown = redact(source)
    stats = SampleStats()
    with open_source(source) as container:
        stream = video_stream(container, source)
        total_s = container.duration / 1_000_000 if container.duration else duration_s
        if total_s and duration_s:
            total_s = min(total_s, duration_s)
        frames = sample_frames(
            container, stream, stream_id or shown, sampling, stats=stats, pace=pace, rng=rng
        )
        with tqdm(
            total=round(total_s, 1) if total_s else None,
            unit="s",
            desc=shown,
            leave=False,
            disable=not sys.stderr.isatty(),
        ) as progress:
            for frame in frames:
                if duration_s is not None and frame.pts_s > duration_s:
                    break
                progress.update(round(frame.pts_s - progress.n, 1))
                yield frame
    # Left out of the scan, frames too large: the file's verdict cannot be "clean" (exit 2).
    stats.check_complete(shown, total_s, duration_s)
    if stats.decode_errors:
        warn(f"{shown}: {stats.decode_errors} packets could not be decoded ({stats.last_error})")
