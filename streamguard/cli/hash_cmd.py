"""``streamguard hash``: perceptual hashes of pictures, or of a video's sampled frames;
with ``--vpdq``, a video's vPDQ signal line as ``threatexchange hash video`` prints it."""

import argparse
import json
from pathlib import Path

from streamguard.cli.console import EXIT_CLEAN, EXIT_ERROR, for_each_source
from streamguard.cli.frames import frames_of
from streamguard.cli.options import Subcommands, add_sample_option
from streamguard.config.sampling import Sampling
from streamguard.errors import StreamguardError
from streamguard.hashing import ALGORITHMS, IMAGE_SUFFIXES, FrameHash, hash_luma
from streamguard.hashing.picture import hash_picture, load_picture
from streamguard.hashing.vpdq import hash_video
from streamguard.hashing.vpdq_signal import signal_line


def add_parser(commands: Subcommands, json_lines: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "hash", parents=[json_lines], help="print perceptual hashes of images or video frames"
    )
    add_sample_option(parser, Sampling("keyframes"))
    parser.add_argument(
        "--algo", action="append", choices=list(ALGORITHMS), help="repeatable (default: pdq)"
    )
    parser.add_argument(
        "--vpdq",
        action="store_true",
        help="print each video's vPDQ signal: vpdq [\"hex,quality,ts\", ...] (threatexchange's)",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.set_defaults(handler=cmd_hash)


def cmd_hash(args: argparse.Namespace) -> int:
    if args.vpdq:
        return cmd_hash_vpdq(args)
    algos = args.algo or ["pdq"]

    def emit(
        path: str, hashes: list[FrameHash], shape: tuple[int, int], pts_s: float | None
    ) -> None:
        height, width = shape
        for frame_hash in hashes:
            if args.json:
                record = {"path": path, "pts_s": pts_s, "algo": frame_hash.algo}
                record |= {"hash": frame_hash.hex, "quality": frame_hash.quality}
                print(json.dumps(record | {"width": width, "height": height}), flush=True)
            else:
                where = path if pts_s is None else f"{path}@{pts_s:.3f}s"
                quality = "-" if frame_hash.quality is None else frame_hash.quality
                print(f"{frame_hash.hex} {frame_hash.algo} {quality} {where}", flush=True)

    def hash_one(source: str) -> None:
        if Path(source).suffix.lower() in IMAGE_SUFFIXES:
            picture = load_picture(source)
            emit(source, hash_picture(picture, algos), picture.shape, None)
            return
        for frame in frames_of(source, args.sample):
            emit(frame.stream_id, hash_luma(frame.luma, algos), frame.luma.shape, frame.pts_s)

    return EXIT_CLEAN if for_each_source(args.paths, hash_one) else EXIT_ERROR


def cmd_hash_vpdq(args: argparse.Namespace) -> int:
    """One ``vpdq [...]`` line per video, which python-threatexchange reads back."""
    if args.json or args.algo:
        raise StreamguardError("hash --vpdq prints threatexchange's line; drop --json and --algo")

    def print_signal(source: str) -> None:
        print(signal_line(hash_video(Path(source)).frames), flush=True)

    return EXIT_CLEAN if for_each_source(args.paths, print_signal) else EXIT_ERROR
