"""``streamguard incident``: turn a live stream's recent frames into a list every worker
matches, within seconds (docs/incidents.md).

``open`` asks the run process watching the stream (runtime/incident_requests.py) and
prints the incident id; ``list``, ``close`` and ``export`` work on Redis directly.
``export`` writes hashes, to the pipe or file the operator names; nothing else here
shows one.
"""

import argparse
import csv
import json
import sys
import time

import redis.asyncio as aioredis

from streamguard.blocklist.entry import columns_of, csv_row
from streamguard.blocklist.incidents import DEFAULT_CATEGORY, Incident, IncidentBook, vpdq_signal
from streamguard.cli.console import EXIT_CLEAN
from streamguard.cli.options import Subcommands, redis_tool_options, with_redis
from streamguard.config.policy import ACTIONS
from streamguard.errors import StreamguardError
from streamguard.infra.redis import RedisSettings
from streamguard.runtime.incident_requests import (
    ANSWER_TIMEOUT_S,
    DEFAULT_SECONDS,
    ask_to_open,
    open_request,
)


def add_parser(commands: Subcommands) -> None:
    incident = commands.add_parser(
        "incident", help="open, list, close or export incidents (needs a run with Redis)"
    )
    actions = incident.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = redis_tool_options()

    opened = actions.add_parser(
        "open", parents=[common], help="make a stream's recent frames a list, kill the stream"
    )
    opened.add_argument("stream_id", metavar="STREAM_ID")
    opened.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        metavar="S",
        help=f"how far back (default: {DEFAULT_SECONDS:g}; at most [incidents] window_s)",
    )
    opened.add_argument(
        "--category",
        default=DEFAULT_CATEGORY,
        metavar="C",
        help="of its entries (default: %(default)s)",
    )
    opened.add_argument(
        "--action",
        dest="decide",
        choices=ACTIONS,
        default="kill",
        help="what other streams matching it get (default: %(default)s)",
    )
    opened.add_argument("--label", default="", metavar="TEXT", help="of its entries")
    opened.set_defaults(handler=cmd_open)

    listed = actions.add_parser("list", parents=[common], help="every incident, oldest first")
    listed.add_argument("--json", action="store_true", help="one JSON object per line")
    listed.set_defaults(handler=cmd_list)

    closed = actions.add_parser(
        "close", parents=[common], help="remove its entries (workers stop matching it)"
    )
    closed.add_argument("incident_id", metavar="ID")
    closed.set_defaults(handler=cmd_close)

    exported = actions.add_parser(
        "export", parents=[common], help="its entries as streamguard CSV or a vPDQ signal"
    )
    exported.add_argument("incident_id", metavar="ID")
    exported.add_argument("--format", choices=("csv", "vpdq"), default="csv")
    exported.set_defaults(handler=cmd_export)


def _note(message: str) -> None:
    print(f"incident: {message}", file=sys.stderr)


def cmd_open(args: argparse.Namespace) -> int:
    fields = {
        "stream": args.stream_id,
        "seconds": args.seconds,
        "category": args.category,
        "action": args.decide,
        "label": args.label,
    }
    try:
        request = open_request(fields, source="cli")
    except ValueError as exc:
        raise StreamguardError(f"incident open: {exc}") from None

    async def work(client: aioredis.Redis, settings: RedisSettings) -> int:
        poll_s = min(1.0, settings.timeout_s / 2)  # a blocking pop within the socket timeout
        answer = await ask_to_open(client, settings.prefix, request, ANSWER_TIMEOUT_S, poll_s)
        print(answer.incident)
        _note(
            f"'{answer.incident}' opened on stream '{request.stream}': {answer.entries} frames "
            f"in list incident-{answer.incident}; the stream is killed"
        )
        return EXIT_CLEAN

    return with_redis(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    async def work(client: aioredis.Redis, settings: RedisSettings) -> int:
        for incident in await IncidentBook(client, settings.prefix).all():
            if args.json:
                print(json.dumps(incident.to_json()))
            else:
                print("\t".join(_row(incident)))
        return EXIT_CLEAN

    return with_redis(args, work)


def _row(incident: Incident) -> list[str]:
    opened = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(incident.opened_at))
    return [
        incident.id,
        incident.state,
        incident.stream,
        incident.action,
        incident.category,
        str(incident.entries),
        opened,
        incident.label,
    ]


def cmd_close(args: argparse.Namespace) -> int:
    async def work(client: aioredis.Redis, settings: RedisSettings) -> int:
        book = IncidentBook(client, settings.prefix)
        was = (await book.get(args.incident_id)).state
        closed = await book.close(args.incident_id, time.time())
        outcome = (
            "was already closed" if was == "closed" else f"closed: {closed.entries} entries removed"
        )
        _note(f"'{closed.id}' {outcome}")
        return EXIT_CLEAN

    return with_redis(args, work)


def cmd_export(args: argparse.Namespace) -> int:
    async def work(client: aioredis.Redis, settings: RedisSettings) -> int:
        book = IncidentBook(client, settings.prefix)
        incident = await book.get(args.incident_id)
        entries = await book.entries(incident)
        if not entries:
            raise StreamguardError(f"incident '{incident.id}' has no entries (closed?)")
        if args.format == "vpdq":
            print(vpdq_signal(entries))
        else:
            columns = columns_of(entries)
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(csv_row(entry, columns) for entry in entries)
        _note(f"exported {len(entries)} entries of '{incident.id}'")
        return EXIT_CLEAN

    return with_redis(args, work)
