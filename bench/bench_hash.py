"""Per-frame cost of each hasher and of getting the luma plane, on real 720p keyframes.

Compares the luma-plane path with the RGB round trip it avoids, PDQ with and
without pre-scaling, the evasion-resistance steps (bars, eight orientations), and
the featureless-frame gate (pHash's and dHash's stable bits are counted inside their
rows; the check of a frame's lookups against featureless pictures' hashes has its own).
"""

import argparse
import time
from pathlib import Path

import av
import numpy as np
import pdqhash

from bench import parse
from streamguard.blocklist.degenerate import Featureless
from streamguard.detect.matcher import PLAIN, ROBUST, frame_hashes, looked_up
from streamguard.hashing import hash_luma
from streamguard.hashing.borders import content_box
from streamguard.hashing.pdq import pdq_dihedral
from streamguard.ingest.sampler import frame_luma
from streamguard.samples import SAMPLES_DIR

CLIP = SAMPLES_DIR / "clips" / "clean_720p.mp4"
SMOKE = {"rounds": 1}


def per_call_ms(function, frames, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for frame in frames:
            function(frame)
    return (time.perf_counter() - started) / (rounds * len(frames)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--rounds", type=int, default=20)
    args = parse(parser, SMOKE)
    with av.open(str(args.clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        frames = list(container.decode(stream))
    lumas = [frame_luma(frame) for frame in frames]
    width, height = frames[0].width, frames[0].height
    featureless = Featureless()
    lookups = [frame_hashes(y, ["pdq", "phash", "dhash"], ROBUST) for y in lumas]
    looked_up(lookups[0], featureless)  # the reference hashes, made once per process
    rows = {
        "luma plane (zero-copy view of Y)": per_call_ms(frame_luma, frames, args.rounds),
        "pHash/dHash input (area pre-scale + range LUT)": per_call_ms(
            lambda y: y.imagehash_input(), lumas, args.rounds
        ),
        "RGB round trip (to_image + L)": per_call_ms(
            lambda f: np.asarray(f.to_image().convert("L")), frames, args.rounds
        ),
        "pdq (pre-scaled to 640 px)": per_call_ms(
            lambda y: hash_luma(y, ["pdq"]), lumas, args.rounds
        ),
        "pdq reference on full RGB": per_call_ms(
            lambda f: pdqhash.compute(f.to_ndarray(format="rgb24")), frames, args.rounds
        ),
        "phash (includes its input)": per_call_ms(
            lambda y: hash_luma(y, ["phash"]), lumas, args.rounds
        ),
        "dhash (includes its input)": per_call_ms(
            lambda y: hash_luma(y, ["dhash"]), lumas, args.rounds
        ),
        "bars found (content_box)": per_call_ms(
            lambda y: content_box(y.pixels), lumas, args.rounds
        ),
        "pdq in 8 orientations (one DCT)": per_call_ms(pdq_dihedral, lumas, args.rounds),
        "all lookups' hashes, plain (pdq + phash)": per_call_ms(
            lambda y: frame_hashes(y, ["pdq", "phash"], PLAIN), lumas, args.rounds
        ),
        "all lookups' hashes, robust (pdq + phash)": per_call_ms(
            lambda y: frame_hashes(y, ["pdq", "phash"], ROBUST), lumas, args.rounds
        ),
        "featureless-picture check of those lookups (pdq + phash + dhash)": per_call_ms(
            lambda hashes: looked_up(hashes, featureless), lookups, args.rounds
        ),
    }
    print(f"{len(frames)} keyframes of {args.clip.name} ({width}x{height}), {args.rounds} rounds")
    print("| step | ms per frame |\n| --- | ---: |")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()
