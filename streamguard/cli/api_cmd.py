"""``streamguard api``: the matching API for uploads, until stopped (docs/api.md)."""

import argparse
from dataclasses import replace
from pathlib import Path

from streamguard import config
from streamguard.cli import options
from streamguard.cli.console import EXIT_CLEAN
from streamguard.config.load import http_address
from streamguard.observability.logging import setup_logging


def add_parser(commands: options.Subcommands) -> None:
    parser = commands.add_parser(
        "api", help="serve the matching API for uploads until stopped (SIGTERM/SIGINT)"
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--blocklist", action="append", type=Path, default=[], metavar="FILE", help="repeatable"
    )
    options.add_threshold_options(parser, documented=False)
    options.add_allow_degenerate(parser)
    options.add_redis_options(parser, default_url=None)
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="where to serve (default 127.0.0.1:9312)"
    )
    parser.add_argument(
        "--token-file",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a bearer token, named by the file; repeatable (none: loopback only)",
    )
    parser.set_defaults(handler=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    settings = config.resolve(args.config, {"blocklist_algo": args.algo})
    api = settings.api
    if args.listen:
        http_address(args.listen, "--listen")  # checked as run's --http is
        api = replace(api, listen=args.listen)
    api = replace(api, token_files=api.token_files + tuple(args.token_file))
    settings = replace(
        settings,
        api=api,
        blocklists=settings.blocklists + tuple(args.blocklist),
        max_distance={**settings.max_distance, **dict(args.max_distance)},
        allow_degenerate=settings.allow_degenerate or args.allow_degenerate,
        redis=options.redis_settings(args, settings.redis),
    )
    if settings.redis.url and settings.blocklists:
        raise config.ConfigError("give blocklist files or a Redis URL, not both")
    if not settings.blocklists and not settings.redis.url:
        raise config.ConfigError(
            "no blocklist: give --blocklist FILE, --redis URL, or either in --config"
        )
    # aiohttp only where it serves: importing it cost every other command 0.2 s at start
    # (0.6 -> 0.8 s), which the suite's many subprocesses pay under load.
    from streamguard.api import service
    from streamguard.api.tokens import Tokens

    tokens = Tokens.from_files(api.token_files)
    service.check_exposure(api.listen_address[0], tokens)
    setup_logging()
    service.run(settings, tokens)
    return EXIT_CLEAN
