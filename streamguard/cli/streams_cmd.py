"""``streamguard streams``: the cluster's stream registry from the command line.

The same registry the webhooks and the control topic write (docs/cluster.md); the
workers' heartbeats pick changes up within ``lease_ttl_s / 4``. URLs are printed
with their credentials redacted.
"""

import argparse
import json
import sys
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from streamguard.cli.options import Subcommands, redis_tool_options, with_redis
from streamguard.config import RUN_SCHEMES, parse_stream
from streamguard.infra.redaction import redact
from streamguard.infra.redis import RedisSettings
from streamguard.infra.registry import Registry
from streamguard.ingest.urls import check_allowed


def add_parser(commands: Subcommands) -> None:
    streams = commands.add_parser(
        "streams", help="list, register or remove the cluster's streams (in Redis)"
    )
    actions = streams.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = redis_tool_options()

    listed = actions.add_parser("list", parents=[common], help="registered streams")
    listed.add_argument("--json", action="store_true", help="one JSON object per line")
    listed.set_defaults(handler=cmd_list)

    added = actions.add_parser("add", parents=[common], help="register (or update) a stream")
    added.add_argument("stream_id", metavar="ID")
    added.add_argument("url", metavar="URL")
    added.add_argument(
        "--sample",
        metavar="MODE",
        help="guard, keyframes or interval:S (default: each run's own --sample or [sampling])",
    )
    added.set_defaults(handler=cmd_add)

    removed = actions.add_parser("remove", parents=[common], help="unregister streams")
    removed.add_argument("stream_ids", nargs="+", metavar="ID")
    removed.set_defaults(handler=cmd_remove)


def _with_registry(args: argparse.Namespace, work: Callable[[Registry], Awaitable[int]]) -> int:
    """Run ``work`` against the registry; Redis failures become one-line errors."""

    async def on_registry(client: aioredis.Redis, settings: RedisSettings) -> int:
        return await work(Registry(client, settings.prefix))

    return with_redis(args, on_registry)


def cmd_list(args: argparse.Namespace) -> int:
    async def work(registry: Registry) -> int:
        for stream_id, registration in sorted((await registry.streams()).items()):
            shown = {"id": stream_id, **registration, "url": redact(registration["url"])}
            if args.json:
                print(json.dumps(shown))
            else:
                sample = shown.get("sample") or "-"
                print(f"{stream_id}\t{shown['url']}\t{sample}\t{shown['source']}")
        return 0

    return _with_registry(args, work)


def cmd_add(args: argparse.Namespace) -> int:
    stream = parse_stream("streams add", args.stream_id, args.url, args.sample)
    check_allowed(stream.url, frozenset(RUN_SCHEMES))

    async def work(registry: Registry) -> int:
        outcome = await registry.register(stream, "cli")
        print(f"streams: '{stream.id}' {outcome} ({redact(stream.url)})", file=sys.stderr)
        return 0

    return _with_registry(args, work)


def cmd_remove(args: argparse.Namespace) -> int:
    async def work(registry: Registry) -> int:
        for stream_id in args.stream_ids:
            removed = await registry.unregister(stream_id)
            outcome = "removed" if removed else "was not registered"
            print(f"streams: '{stream_id}' {outcome}", file=sys.stderr)
        return 0

    return _with_registry(args, work)
