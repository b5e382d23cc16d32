"""The ``streamguard`` command. Exit codes follow clamscan: 0 clean, 1 match, 2 error."""

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from streamguard import __version__, config
from streamguard.blocklist import commands as blocklist_commands
from streamguard.blocklist.memory import Blocklist
from streamguard.blocklist.sync import load_once
from streamguard.detect.matcher import FrameMatcher, Match
from streamguard.detect.policy import Policy, StreamPolicy
from streamguard.enforce import commands as enforce_commands
from streamguard.errors import SourceError, StreamguardError
from streamguard.evaluation import commands as eval_commands
from streamguard.events.schema import Action
from streamguard.hashing import (
    ALGORITHMS,
    IMAGE_SUFFIXES,
    check_distance,
    hash_luma,
    load_image_luma,
)
from streamguard.infra.redaction import redact
from streamguard.infra.redis import RedisSettings
from streamguard.ingest.replay import copy_urls, paced, publish
from streamguard.ingest.sampler import Frame, Pace, sample_frames
from streamguard.ingest.sampling import Sampling
from streamguard.ingest.source import open_source, video_stream
from streamguard.ingest.stats import SampleStats
from streamguard.ingest.urls import check_allowed
from streamguard.observability.logging import setup_logging
from streamguard.runtime import commands as stream_commands
from streamguard.runtime import supervisor
from streamguard.samples import SAMPLES_DIR

EXIT_CLEAN, EXIT_MATCH, EXIT_ERROR = 0, 1, 2


def _warn(message: str) -> None:
    print(f"streamguard: warning: {message}", file=sys.stderr)


def _error(message: object) -> None:
    print(f"streamguard: error: {message}", file=sys.stderr)


def _sampling(text: str) -> Sampling:
    try:
        return Sampling.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sample_option(
    parser: argparse.ArgumentParser, default: Sampling | None, what: str = ""
) -> None:
    shown = f" (default: {default})" if default is not None else ""
    parser.add_argument(
        "--sample",
        type=_sampling,
        default=default,
        metavar="MODE",
        help=f"frames to hash: guard, keyframes or interval:S {what}{shown} (docs/sampling.md)",
    )


def _max_distance(text: str) -> tuple[str, int]:
    algo, _, value = text.partition("=")
    if algo not in ALGORITHMS or not value.isdigit():
        raise argparse.ArgumentTypeError(
            f"'{text}': expected ALGO=N, ALGO one of {list(ALGORITHMS)}"
        )
    try:
        return algo, check_distance(algo, int(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}': {exc}") from None


def frames_of(
    source: str,
    sampling: Sampling,
    *,
    pace: Pace | None = None,
    duration_s: float | None = None,
    stream_id: str | None = None,
) -> Iterator[Frame]:
    """Sampled frames of a file or URL, with a progress bar on a terminal.

    Frames carry ``stream_id``, by default the source as printed (redacted).
    """
    shown = redact(source)
    stats = SampleStats()
    with open_source(source) as container:
        stream = video_stream(container, source)
        total_s = container.duration / 1_000_000 if container.duration else duration_s
        if total_s and duration_s:
            total_s = min(total_s, duration_s)
        frames = sample_frames(
            container, stream, stream_id or shown, sampling, stats=stats, pace=pace
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
    if duration_s is None and total_s and stats.end_s is not None and stats.end_s < total_s - 1:
        raise SourceError(f"{shown}: ended at {stats.end_s:.1f} s of {total_s:.1f} s (truncated?)")
    if stats.too_large:
        # Left out of the scan: the file's verdict cannot be "clean" (exit 2, matches kept).
        size = stats.last_error.removeprefix("a frame is ")
        what = "part of the video is" if stats.frames_sampled else "video is"
        raise SourceError(f"{shown}: {what} {size}")
    if stats.frames_sampled == 0:
        reason = f" ({stats.last_error})" if stats.decode_errors else ""
        raise SourceError(f"{shown}: no decodable video frames{reason}")
    if stats.decode_errors:
        _warn(f"{shown}: {stats.decode_errors} packets could not be decoded ({stats.last_error})")


def _for_each_source(sources: list[str], scan_one: Callable[[str], None]) -> bool:
    """Run ``scan_one`` on every source; a failing source is reported, the others still run."""
    ok = True
    for source in sources:
        try:
            scan_one(source)
        except StreamguardError as exc:
            _error(exc)
            ok = False
    return ok


def cmd_hash(args: argparse.Namespace) -> int:
    algos = args.algo or ["pdq"]

    def emit(path: str, luma, pts_s: float | None) -> None:
        height, width = luma.shape
        for frame_hash in hash_luma(luma, algos):
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
            emit(source, load_image_luma(source), None)
            return
        for frame in frames_of(source, args.sample):
            emit(frame.stream_id, frame.luma, frame.pts_s)

    return EXIT_CLEAN if _for_each_source(args.paths, hash_one) else EXIT_ERROR


def _print_match(match: Match, as_json: bool) -> None:
    frame, hit = match.frame, match.hit
    if as_json:
        evidence = match.evidence().to_json()
        record = {"source": frame.stream_id, "pts_s": round(frame.pts_s, 3), **evidence}
        print(json.dumps(record), flush=True)
    else:
        print(
            f"MATCH {frame.stream_id}@{frame.pts_s:.3f}s {match.hash.algo} "
            f"distance={hit.distance}/{hit.threshold} category={hit.entry.category} "
            f"entry={hit.entry.list}/{hit.entry.id} label={hit.entry.label!r}",
            flush=True,
        )


def _scan_blocklist(args: argparse.Namespace) -> Blocklist:
    redis = blocklist_commands.redis_settings(args, config.redis_from_environment(RedisSettings()))
    if redis.url and args.blocklist:
        raise config.ConfigError("give --blocklist FILE or --redis URL, not both")
    if redis.url:
        return asyncio.run(load_once(redis, dict(args.max_distance)))
    if not args.blocklist:
        raise config.ConfigError("no blocklist: give --blocklist FILE or --redis URL")
    blocklist, refused = Blocklist.from_files(
        args.blocklist,
        args.algo,
        dict(args.max_distance),
        allow_degenerate=args.allow_degenerate,
    )
    for refusal in refused:
        _warn(str(refusal))
    if refused:
        _warn(f"{len(refused)} degenerate entries refused; the other {len(blocklist)} loaded")
    return blocklist


def cmd_scan(args: argparse.Namespace) -> int:
    blocklist = _scan_blocklist(args)
    matcher = FrameMatcher(blocklist)

    def scan_one(source: str) -> None:
        for frame in frames_of(source, args.sample, duration_s=args.duration):
            for match in matcher(frame):
                _print_match(match, args.json)

    ok = _for_each_source(args.sources, scan_one)
    if not ok:
        return EXIT_ERROR
    return EXIT_MATCH if matcher.stats.matches else EXIT_CLEAN


def cmd_demo(args: argparse.Namespace) -> int:
    samples = args.samples
    clip = samples / "clips" / "flagged_720p.mp4"
    blocklist, _ = Blocklist.from_files([samples / "blocklist.csv"])  # none degenerate
    matcher = FrameMatcher(blocklist)
    worker_id = f"{socket.gethostname()}/demo"
    print(
        f"demo: replaying {clip.name} in real time against {len(blocklist)} sample blocklist "
        f"entries ({', '.join(blocklist.algos)}); events follow as JSON lines",
        file=sys.stderr,
    )
    detections = 0
    policy = StreamPolicy(Policy())
    for frame in frames_of(str(clip), Sampling(), pace=paced, stream_id="demo"):
        decision = policy.observe(matcher(frame), frame.received_at)
        if decision is None:
            continue
        best = decision.match
        event = best.event(
            Action(decision.action),
            stream_url=str(clip),
            worker_id=worker_id,
            confirmations=decision.confirmations,
        )
        print(json.dumps(event.to_json()), flush=True)
        detections += 1
        print(
            f"demo: t={frame.pts_s:.1f} s matched '{best.hit.entry.label}' "
            f"({best.hash.algo} distance {best.hit.distance}/{best.hit.threshold}), "
            f"{decision.action} decided {best.latency_s * 1000:.0f} ms after its frame was read",
            file=sys.stderr,
        )
    stats = matcher.stats
    print(f"demo: {stats.frames} frames hashed, {detections} detections", file=sys.stderr)
    if not detections:
        raise StreamguardError(f"{clip}: the demo clip produced no detection")
    return EXIT_CLEAN


def cmd_run(args: argparse.Namespace) -> int:
    settings = config.load_file(args.config) if args.config else config.Settings()
    settings = config.from_environment(settings)
    streams = settings.streams + tuple(config.parse_stream_flag(s) for s in args.stream)
    settings = replace(
        settings,
        streams=streams,
        blocklists=settings.blocklists + tuple(args.blocklist),
        blocklist_algo=args.algo or settings.blocklist_algo,
        max_distance={**settings.max_distance, **dict(args.max_distance)},
        allow_degenerate=settings.allow_degenerate or args.allow_degenerate,
        redis=blocklist_commands.redis_settings(args, settings.redis),
    )
    if args.mqtt:
        settings = replace(settings, mqtt=replace(settings.mqtt, url=args.mqtt))
    if args.http:
        settings = config.with_http(settings, args.http)
    if args.processes is not None:
        settings = replace(settings, processes=args.processes)
    if args.sample is not None:
        settings = replace(settings, sample=args.sample)
    if settings.cluster.enabled and not settings.redis.url:
        raise config.ConfigError("cluster.enabled needs Redis: give --redis URL or [redis] url")
    if not settings.streams and not settings.cluster.enabled:
        raise config.ConfigError(
            "no streams: give --stream ID=URL or [[streams]] in --config, or enable [cluster]"
        )
    if settings.redis.url and settings.blocklists:
        raise config.ConfigError("give blocklist files or a Redis URL, not both")
    if not settings.blocklists and not settings.redis.url:
        raise config.ConfigError(
            "no blocklist: give --blocklist FILE, --redis URL, or either in --config"
        )
    config.check_streams(settings.streams)
    allowed = frozenset(settings.ingest.allowed_schemes)
    for stream in settings.streams:
        check_allowed(stream.url, allowed)
    setup_logging()
    supervisor.run(settings)
    return EXIT_CLEAN


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        urls = copy_urls(args.url, args.copies)
    except ValueError as exc:
        raise StreamguardError(f"{redact(args.url)}: {exc}") from None
    for url in urls:
        check_allowed(url, frozenset({"rtmp", "rtmps"}))
    print(
        f"replay: publishing {args.file} to {len(urls)} stream(s) in real time"
        f"{', looping' if args.loop else ''}; Ctrl-C or SIGTERM stops",
        file=sys.stderr,
    )
    # Explicit handlers: a background job inherits SIGINT ignored, and a service manager
    # stops with SIGTERM. Either way every copy ends its stream cleanly.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    errors = publish(args.file, urls, loop=args.loop, stop=stop, keyframe_log=args.keyframe_log)
    for error in errors:
        _error(error)
    return EXIT_ERROR if errors else EXIT_CLEAN


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamguard",
        description="Match live video against perceptual-hash blocklists.",
        epilog="Exit codes: 0 clean, 1 match found, 2 error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    json_lines = argparse.ArgumentParser(add_help=False)
    json_lines.add_argument("--json", action="store_true", help="JSON lines output")

    hash_cmd = commands.add_parser(
        "hash", parents=[json_lines], help="print perceptual hashes of images or video frames"
    )
    _sample_option(hash_cmd, Sampling("keyframes"))
    hash_cmd.add_argument(
        "--algo", action="append", choices=list(ALGORITHMS), help="repeatable (default: pdq)"
    )
    hash_cmd.add_argument("paths", nargs="+", metavar="PATH")
    hash_cmd.set_defaults(handler=cmd_hash)

    scan = commands.add_parser(
        "scan", parents=[json_lines], help="scan files or stream URLs once against blocklists"
    )
    _sample_option(scan, Sampling())
    scan.add_argument(
        "--blocklist",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="blocklist file (CSV/TSV/JSON lines, or bare hashes with --algo); repeatable",
    )
    blocklist_commands.add_redis_options(scan, default_url=None)
    scan.add_argument(
        "--algo", choices=list(ALGORITHMS), help="algorithm of bare one-hash-per-line files"
    )
    scan.add_argument(
        "--max-distance",
        action="append",
        type=_max_distance,
        default=[],
        metavar="ALGO=N",
        help="match threshold (default: pdq=31 phash=10 dhash=10)",
    )
    blocklist_commands.add_allow_degenerate(scan)
    scan.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop each source after this stream time"
    )
    scan.add_argument("sources", nargs="+", metavar="SOURCE")
    scan.set_defaults(handler=cmd_scan)

    run = commands.add_parser("run", help="watch live streams until stopped (SIGTERM/SIGINT)")
    run.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    run.add_argument(
        "--stream",
        action="append",
        default=[],
        metavar="ID=URL",
        help="a stream to watch; repeatable",
    )
    run.add_argument(
        "--blocklist", action="append", type=Path, default=[], metavar="FILE", help="repeatable"
    )
    _sample_option(run, None, "of every stream without a sample of its own (default: guard)")
    run.add_argument("--algo", choices=list(ALGORITHMS), help="algorithm of bare hash files")
    blocklist_commands.add_allow_degenerate(run)
    blocklist_commands.add_redis_options(run, default_url=None)
    run.add_argument(
        "--mqtt",
        metavar="URL",
        help="mqtt://[USER:PASSWORD@]HOST[:PORT] (mqtts:// for TLS): events go there, not stdout",
    )
    run.add_argument(
        "--max-distance", action="append", type=_max_distance, default=[], metavar="ALGO=N"
    )
    run.add_argument(
        "--http", metavar="HOST:PORT", help="serves /streams /healthz /readyz (127.0.0.1:9310)"
    )
    run.add_argument(
        "--processes", type=int, metavar="N", help="worker processes (default: one per core)"
    )
    run.set_defaults(handler=cmd_run)

    blocklist_commands.add_parser(commands)
    enforce_commands.add_parser(commands)
    stream_commands.add_parser(commands)
    eval_commands.add_parser(commands)

    replay = commands.add_parser(
        "replay", help="publish a file as a live RTMP stream in real time (stream copy)"
    )
    replay.add_argument("file", metavar="FILE")
    replay.add_argument(
        "url", metavar="URL", help="rtmp(s)://…; with --copies, {n} or a -n suffix numbers them"
    )
    replay.add_argument("--loop", action="store_true", help="start over at the end, forever")
    replay.add_argument("--copies", type=int, default=1, metavar="N", help="streams at once")
    replay.add_argument(
        "--keyframe-log",
        type=Path,
        metavar="FILE",
        help="append a JSON line per keyframe sent (pts_s, sent_at), for latency measurements",
    )
    replay.set_defaults(handler=cmd_replay)

    demo = commands.add_parser("demo", help="replay a bundled clip through the live pipeline")
    demo.add_argument("--samples", type=Path, default=SAMPLES_DIR, help=argparse.SUPPRESS)
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except StreamguardError as exc:
        if args.debug:
            traceback.print_exc()
        _error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `export | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
