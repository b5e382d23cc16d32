"""The ``streamguard`` command: one module per command (``*_cmd.py``), each adding its
parser and handler. Exit codes follow clamscan: 0 clean, 1 match, 2 error."""

import argparse
import os
import sys
import traceback
from collections.abc import Callable

from streamguard import __version__
from streamguard.cli import (
    api_cmd,
    audit_cmd,
    blocklist_cmd,
    demo_cmd,
    enforce_cmd,
    eval_cmd,
    hash_cmd,
    incident_cmd,
    replay_cmd,
    run_cmd,
    scan_cmd,
    streams_cmd,
)
from streamguard.cli.console import EXIT_ERROR, error
from streamguard.errors import StreamguardError


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
    hash_cmd.add_parser(commands, json_lines)
    scan_cmd.add_parser(commands, json_lines)
    run_cmd.add_parser(commands)
    api_cmd.add_parser(commands)
    blocklist_cmd.add_parser(commands)
    enforce_cmd.add_parser(commands)
    streams_cmd.add_parser(commands)
    incident_cmd.add_parser(commands)
    audit_cmd.add_parser(commands)
    eval_cmd.add_parser(commands)
    replay_cmd.add_parser(commands)
    demo_cmd.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except StreamguardError as exc:
        if args.debug:
            traceback.print_exc()
        error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `export | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
