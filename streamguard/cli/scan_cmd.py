"""``streamguard scan``: files or stream URLs, once, against blocklist files or Redis."""

import argparse
import asyncio
import json
from pathlib import Path

from streamguard import config
from streamguard.blocklist.memory import Blocklist
from streamguard.blocklist.sync import load_once
from streamguard.cli.console import EXIT_CLEAN, EXIT_ERROR, EXIT_MATCH, for_each_source, warn
from streamguard.cli.frames import frames_of
from streamguard.cli.options import (
    Subcommands,
    add_allow_degenerate,
    add_redis_options,
    add_sample_option,
    add_threshold_options,
    redis_settings,
)
from streamguard.config.policy import Rule
from streamguard.config.sampling import Sampling
from streamguard.detect.matcher import FrameMatcher, Match
from streamguard.detect.video import VideoEvidence, VideoTracker
from streamguard.infra.redis import RedisSettings


def add_parser(commands: Subcommands, json_lines: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "scan", parents=[json_lines], help="scan files or stream URLs once against blocklists"
    )
    add_sample_option(parser, Sampling())
    parser.add_argument(
        "--blocklist",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="blocklist file (CSV/TSV/JSON lines, or bare hashes with --algo); repeatable",
    )
    add_redis_options(parser, default_url=None)
    add_threshold_options(parser)
    add_allow_degenerate(parser)
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop each source after this stream time"
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE")
    parser.set_defaults(handler=cmd_scan)


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


def _print_video(source: str, evidence: VideoEvidence, as_json: bool) -> None:
    video = evidence.summary()
    if as_json:
        print(json.dumps({"source": source, "video": video.to_json()}), flush=True)
    else:
        print(
            f"VIDEO {source} video={video.id} offset={video.offset_s:+.1f}s "
            f"frames={video.frames_matched} window={video.window_s:.1f}s "
            f"coverage={video.coverage:.2f}",
            flush=True,
        )


def _scan_blocklist(args: argparse.Namespace) -> Blocklist:
    redis = redis_settings(args, config.redis_from_environment(RedisSettings()))
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
        warn(str(refusal))
    if refused:
        warn(f"{len(refused)} degenerate entries refused; the other {len(blocklist)} loaded")
    return blocklist


def cmd_scan(args: argparse.Namespace) -> int:
    blocklist = _scan_blocklist(args)
    matcher = FrameMatcher(blocklist)

    def scan_one(source: str) -> None:
        videos = VideoTracker(Rule().video_window_s, Rule().video_coverage)
        for frame in frames_of(source, args.sample, duration_s=args.duration):
            matches = matcher(frame)
            for match in matches:
                _print_match(match, args.json)
            frames = [m for m in matches if m.hit.entry.video and not m.hit.entry.degenerate]
            videos.observe(frame.pts_s, frames)
        for evidence in videos.best.values():
            _print_video(source, evidence, args.json)

    ok = for_each_source(args.sources, scan_one)
    if not ok:
        return EXIT_ERROR
    return EXIT_MATCH if matcher.stats.matches else EXIT_CLEAN
