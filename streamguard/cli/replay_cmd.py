"""``streamguard replay``: publish a file as a live RTMP stream in real time (tests, demos)."""

import argparse
import signal
import sys
import threading
from pathlib import Path

from streamguard.cli.console import EXIT_CLEAN, EXIT_ERROR, error
from streamguard.cli.options import Subcommands
from streamguard.errors import StreamguardError
from streamguard.infra.redaction import redact
from streamguard.ingest.replay import copy_urls, publish
from streamguard.ingest.urls import check_allowed


def add_parser(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "replay", help="publish a file as a live RTMP stream in real time (stream copy)"
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument(
        "url", metavar="URL", help="rtmp(s)://…; with --copies, {n} or a -n suffix numbers them"
    )
    parser.add_argument("--loop", action="store_true", help="start over at the end, forever")
    parser.add_argument("--copies", type=int, default=1, metavar="N", help="streams at once")
    parser.add_argument(
        "--keyframe-log",
        type=Path,
        metavar="FILE",
        help="append a JSON line per keyframe sent (pts_s, sent_at), for latency measurements",
    )
    parser.set_defaults(handler=cmd_replay)


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
    for failure in errors:
        error(failure)
    return EXIT_ERROR if errors else EXIT_CLEAN
