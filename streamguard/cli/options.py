"""Option groups several commands share: Redis, sampling, thresholds, degenerate entries."""

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamguard.blocklist.store import StoreError
from streamguard.config import redis_from_environment
from streamguard.config.sampling import Sampling
from streamguard.hashing import ALGORITHMS, check_distance
from streamguard.infra.redis import DEFAULT_PREFIX, RedisSettings, connect, describe

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

Subcommands = Any  # argparse's private _SubParsersAction


def add_redis_options(parser: argparse.ArgumentParser, *, default_url: str | None) -> None:
    """--redis, --redis-prefix and --redis-password-file."""
    shown = f" (default: $STREAMGUARD_REDIS_URL or {default_url})" if default_url else ""
    parser.add_argument(
        "--redis",
        metavar="URL",
        help=f"redis://[:PASSWORD@]HOST:PORT/DB, rediss:// for TLS{shown}",
    )
    parser.add_argument(
        "--redis-prefix", metavar="PREFIX", help=f"key prefix (default: {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--redis-password-file", type=Path, metavar="FILE", help="read the password from FILE"
    )


def redis_settings(args: argparse.Namespace, base: RedisSettings) -> RedisSettings:
    """``base`` (file and environment) with the command line's Redis options on top."""
    values: dict[str, Any] = {}
    if args.redis:
        values["url"] = args.redis
    if args.redis_prefix:
        values["prefix"] = args.redis_prefix
    if args.redis_password_file:
        values["password_file"] = args.redis_password_file
    return replace(base, **values)


def redis_of_tool(args: argparse.Namespace) -> RedisSettings:
    """For the Redis tools (blocklist, streams): the command line over
    STREAMGUARD_REDIS_* over the default URL."""
    return redis_settings(args, redis_from_environment(RedisSettings(url=DEFAULT_REDIS_URL)))


RedisWork = Callable[[aioredis.Redis, RedisSettings], Awaitable[int]]


def with_redis(args: argparse.Namespace, work: RedisWork) -> int:
    """Run ``work`` with a client of the Redis tools' Redis (``redis_of_tool``); Redis
    failures become one-line errors."""
    settings = redis_of_tool(args)

    async def main() -> int:
        client = connect(settings)
        try:
            return await work(client, settings)
        except RedisError as exc:
            raise StoreError(describe(exc, settings.url)) from None
        finally:
            await client.aclose()

    return asyncio.run(main())


def redis_tool_options() -> argparse.ArgumentParser:
    """A parent parser with the Redis options of the Redis tools."""
    common = argparse.ArgumentParser(add_help=False)
    add_redis_options(common, default_url=DEFAULT_REDIS_URL)
    return common


def add_allow_degenerate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-degenerate",
        action="store_true",
        help="load entries a flat or gradient picture's hash is close to (refused by "
        "default); they decide nothing on their own",
    )


def sampling(text: str) -> Sampling:
    try:
        return Sampling.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sample_option(
    parser: argparse.ArgumentParser, default: Sampling | None, what: str = ""
) -> None:
    shown = f" (default: {default})" if default is not None else ""
    parser.add_argument(
        "--sample",
        type=sampling,
        default=default,
        metavar="MODE",
        help=f"frames to hash: guard, keyframes or interval:S {what}{shown} (docs/sampling.md)",
    )


def algo_distance(text: str) -> tuple[str, int]:
    """``ALGO=N``, N within the algorithm's range."""
    algo, _, value = text.strip().partition("=")
    if algo not in ALGORITHMS or not value.isdigit():
        raise argparse.ArgumentTypeError(
            f"'{text}': expected ALGO=N, ALGO one of {list(ALGORITHMS)}"
        )
    try:
        return algo, check_distance(algo, int(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}': {exc}") from None


def thresholds(text: str) -> dict[str, int]:
    """``pdq=31,phash=10`` -> {"pdq": 31, "phash": 10}."""
    return dict(algo_distance(part) for part in text.split(","))


def add_threshold_options(parser: argparse.ArgumentParser, *, documented: bool = True) -> None:
    """--algo of bare hash files and --max-distance ALGO=N."""
    parser.add_argument(
        "--algo", choices=list(ALGORITHMS), help="algorithm of bare one-hash-per-line files"
    )
    parser.add_argument(
        "--max-distance",
        action="append",
        type=algo_distance,
        default=[],
        metavar="ALGO=N",
        help="match threshold (default: pdq=31 phash=10 dhash=10)" if documented else None,
    )
