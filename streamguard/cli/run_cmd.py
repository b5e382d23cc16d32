"""``streamguard run``: watch live streams until stopped (runtime/supervisor.py)."""

import argparse
from dataclasses import replace
from pathlib import Path

from streamguard import config
from streamguard.cli import options
from streamguard.cli.console import EXIT_CLEAN
from streamguard.ingest.urls import check_allowed
from streamguard.observability.logging import setup_logging
from streamguard.runtime import supervisor


def add_parser(commands: options.Subcommands) -> None:
    parser = commands.add_parser("run", help="watch live streams until stopped (SIGTERM/SIGINT)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--stream",
        action="append",
        default=[],
        metavar="ID=URL",
        help="a stream to watch; repeatable",
    )
    parser.add_argument(
        "--blocklist", action="append", type=Path, default=[], metavar="FILE", help="repeatable"
    )
    options.add_sample_option(
        parser, None, "of every stream without a sample of its own (default: guard)"
    )
    options.add_threshold_options(parser, documented=False)
    options.add_allow_degenerate(parser)
    options.add_redis_options(parser, default_url=None)
    parser.add_argument(
        "--mqtt",
        metavar="URL",
        help="mqtt://[USER:PASSWORD@]HOST[:PORT] (mqtts:// for TLS): events go there, not stdout",
    )
    parser.add_argument(
        "--http", metavar="HOST:PORT", help="serves /streams /healthz /readyz (127.0.0.1:9310)"
    )
    parser.add_argument(
        "--processes", type=int, metavar="N", help="worker processes (default: one per core)"
    )
    parser.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    flags = {
        "mqtt.url": args.mqtt,
        "http": args.http,
        "processes": args.processes,
        "sample": args.sample,
        "blocklist_algo": args.algo,
    }
    settings = config.resolve(args.config, flags)
    settings = replace(
        settings,
        streams=settings.streams + tuple(config.parse_stream_flag(s) for s in args.stream),
        blocklists=settings.blocklists + tuple(args.blocklist),
        max_distance={**settings.max_distance, **dict(args.max_distance)},
        allow_degenerate=settings.allow_degenerate or args.allow_degenerate,
        redis=options.redis_settings(args, settings.redis),
    )
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
