"""``streamguard blocklist``: manage the shared blocklist in Redis.

Output names files, counts and timings, never hash values: hash lists are
confidential. ``export`` writes hashes, to the file or pipe the user names.
Degenerate entries (blocklist/degenerate.py) are refused by ``import`` (the rest of
each file is written) and ``add`` (an error), unless ``--allow-degenerate``;
``add-image`` never writes them; ``add-video`` refuses them like ``add`` (a fade or a
black frame is common in video).
"""

import argparse
import csv
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from itertools import compress
from pathlib import Path
from typing import TextIO

import redis.asyncio as aioredis

from streamguard.blocklist.degenerate import (
    Featureless,
    Refusal,
    degenerate_summary,
    load_screened,
)
from streamguard.blocklist.entry import COLUMNS, Entry, columns_of, csv_row, parse_entry
from streamguard.blocklist.store import BlocklistStore
from streamguard.blocklist.variants import entry_id, image_hashes
from streamguard.blocklist.video_signal import frame_entries, video_id_of
from streamguard.cli.options import (
    Subcommands,
    add_allow_degenerate,
    redis_tool_options,
    with_redis,
)
from streamguard.errors import StreamguardError
from streamguard.hashing import ALGORITHMS
from streamguard.hashing.pdq import MIN_QUALITY
from streamguard.hashing.picture import load_picture
from streamguard.hashing.vpdq import hash_video
from streamguard.infra.redis import RedisSettings

MANUAL_LIST = "manual"


def add_parser(commands: Subcommands) -> None:
    blocklist = commands.add_parser(
        "blocklist", help="manage the shared blocklist in Redis (import, add, remove, stats…)"
    )
    actions = blocklist.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = redis_tool_options()

    imported = actions.add_parser(
        "import",
        parents=[common],
        help="import blocklist files (CSV/TSV/JSON lines, ThreatExchange/HMA CSV, bare hashes)",
    )
    imported.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imported.add_argument("--algo", choices=list(ALGORITHMS), help="algorithm of bare hash files")
    add_allow_degenerate(imported)
    imported.set_defaults(handler=cmd_import)

    add = actions.add_parser("add", parents=[common], help="add or update one entry")
    add.add_argument("--algo", choices=list(ALGORITHMS), required=True)
    add.add_argument("--hash", required=True, metavar="HEX")
    _entry_options(add)
    add.add_argument("--id", help="entry id (default: derived from the hash)")
    add_allow_degenerate(add)
    add.set_defaults(handler=cmd_add)

    _add_image_parser(actions, common)
    _add_video_parser(actions, common)

    remove = actions.add_parser("remove", parents=[common], help="remove entries by id")
    remove.add_argument("ids", nargs="+", metavar="ID")
    remove.add_argument("--list", default=MANUAL_LIST, help=f"their list (default: {MANUAL_LIST})")
    remove.set_defaults(handler=cmd_remove)

    stats = actions.add_parser("stats", parents=[common], help="entries per algo, list, category")
    stats.add_argument("--json", action="store_true", help="one JSON object")
    stats.set_defaults(handler=cmd_stats)

    export = actions.add_parser(
        "export", parents=[common], help="write every entry as CSV (with source and added_at)"
    )
    export.add_argument("--output", type=Path, metavar="FILE", help="default: standard output")
    export.set_defaults(handler=cmd_export)


def _add_image_parser(actions: Subcommands, common: argparse.ArgumentParser) -> None:
    images = actions.add_parser(
        "add-image",
        parents=[common],
        help="hash images with every algorithm and add them (id: <file stem>-<algo>)",
    )
    images.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    images.add_argument(
        "--algo", action="append", choices=list(ALGORITHMS), help="repeatable (default: all)"
    )
    _entry_options(images)
    images.add_argument(
        "--variants",
        action="store_true",
        help="also add hashes of crops, zooms and a mirror image (ids <id>~<variant>)",
    )
    _output_option(images)
    images.set_defaults(handler=cmd_add_image)


def _add_video_parser(actions: Subcommands, common: argparse.ArgumentParser) -> None:
    videos = actions.add_parser(
        "add-video",
        parents=[common],
        help="hash videos as vPDQ does (one PDQ per second) and add a frame entry each",
    )
    videos.add_argument("videos", nargs="+", type=Path, metavar="FILE")
    _entry_options(videos)
    videos.add_argument(
        "--video-id",
        metavar="ID",
        help="the video's id (one FILE only; default: its vPDQ signal's, as an import of it)",
    )
    add_allow_degenerate(videos)
    _output_option(videos)
    videos.set_defaults(handler=cmd_add_video)


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="append the entries to this blocklist CSV instead of writing to Redis",
    )


def _entry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", default=MANUAL_LIST, help=f"default: {MANUAL_LIST}")
    parser.add_argument("--category", default="", help="e.g. csam, terror, test")
    parser.add_argument("--label", default="")


def _with_store(args: argparse.Namespace, work: Callable[[BlocklistStore], Awaitable[int]]) -> int:
    """Run ``work`` against the store; Redis failures become one-line errors."""

    async def on_store(client: aioredis.Redis, settings: RedisSettings) -> int:
        return await work(BlocklistStore(client, settings.prefix, settings.max_changes))

    return with_redis(args, on_store)


def _note(message: str) -> None:
    print(f"blocklist: {message}", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # Every file is parsed before anything is written: one bad line writes nothing.
    featureless = Featureless()
    screened = [
        (path, load_screened(path, featureless, algo=args.algo, allow=args.allow_degenerate))
        for path in args.files
    ]
    parse_s = time.perf_counter() - started
    for _, result in screened:
        for refusal in result.refused:
            _note(str(refusal))
    parsed = [(path, result.entries) for path, result in screened]

    async def work(store: BlocklistStore) -> int:
        for path, entries in parsed:
            began = time.perf_counter()
            added, updated = await store.write(entries, source=path.name, now=time.time())
            took = time.perf_counter() - began
            _note(
                f"{path}: {len(entries)} entries: {added} added, {updated} updated, "
                f"{len(entries) - added - updated} unchanged "
                f"(written in {took:.2f} s, {len(entries) / max(took, 1e-9):,.0f} entries/s)"
            )
        return 0

    code = _with_store(args, work)
    total = sum(len(entries) for _, entries in parsed)
    took = time.perf_counter() - started
    refused = sum(len(result.refused) for _, result in screened)
    loaded = sum(result.degenerate for _, result in screened)
    _note(
        f"imported {total} entries from {len(parsed)} file(s) in {took:.2f} s "
        f"(parsing {parse_s:.2f} s; {total / max(took, 1e-9):,.0f} entries/s)"
        + degenerate_summary(refused, loaded)
    )
    return code


def _manual_entry(args: argparse.Namespace, algo: str, hex_hash: str, entry_id: str) -> Entry:
    row = {"algo": algo, "hash": hex_hash, "id": entry_id, "list": args.list}
    row |= {"category": args.category, "label": args.label}
    try:
        return parse_entry(row, default_algo=None, default_list=MANUAL_LIST)
    except ValueError as exc:
        raise StreamguardError(f"blocklist add: {exc}") from None


def cmd_add(args: argparse.Namespace) -> int:
    entry = _manual_entry(args, args.algo, args.hash, args.id or "")
    what = f"{entry.list}/{entry.id}"
    if Featureless().entries([entry])[0]:
        if not args.allow_degenerate:
            raise StreamguardError(str(Refusal("blocklist add", entry)))
        what += " (degenerate: it decides nothing on its own)"
    return _write(args, [entry], what)


def cmd_add_image(args: argparse.Namespace) -> int:
    algos = args.algo or list(ALGORITHMS)
    entries = []
    for path in args.images:
        for suffix, frame_hash, problem in image_hashes(
            load_picture(path), algos, variants=args.variants
        ):
            if problem is not None:
                _note(f"{path} ({suffix or 'as is'}): {frame_hash.algo}: {problem}; skipped")
                continue
            identifier = entry_id(path.stem, frame_hash.algo, suffix)
            entries.append(_manual_entry(args, frame_hash.algo, frame_hash.hex, identifier))
    if not entries:
        raise StreamguardError("blocklist add-image: no usable hash in the given images")
    return _store_or_append(args, entries, f"{len(args.images)} image(s)")


def cmd_add_video(args: argparse.Namespace) -> int:
    if args.video_id is not None and len(args.videos) > 1:
        raise StreamguardError("blocklist add-video: --video-id names one video; give one FILE")
    featureless = Featureless()
    entries = [entry for path in args.videos for entry in _video_entries(args, path, featureless)]
    if not entries:
        raise StreamguardError("blocklist add-video: no usable frame in the given videos")
    return _store_or_append(args, entries, f"{len(args.videos)} video(s)")


def _video_entries(args: argparse.Namespace, path: Path, featureless: Featureless) -> list[Entry]:
    """The frame entries ``add-video`` writes for one video: not those of quality below 50,
    nor degenerate ones unless allowed (each refusal noted)."""
    started = time.process_time()
    video = hash_video(path)
    cpu_s = time.process_time() - started
    row = {"list": args.list, "category": args.category, "label": args.label}
    video_id = args.video_id or video_id_of(video.frames)
    frames = frame_entries(video.frames, video=video_id, row=row, default_list=MANUAL_LIST)
    kept = [entry for entry in frames if entry.indexed]
    flags = featureless.entries(kept).tolist() if kept else []
    refused = [] if args.allow_degenerate else list(compress(kept, flags))
    for entry in refused:
        _note(str(Refusal(f"{path} at {entry.ts:.3f} s", entry)))
    seconds = video.decoded / video.fps
    _note(
        f"{path}: video {video_id}: {len(frames)} frames of {seconds:.1f} s hashed in "
        f"{cpu_s:.2f} s CPU ({seconds / max(cpu_s, 1e-9):.0f} s of video per CPU second); "
        f"{len(frames) - len(kept)} below quality {MIN_QUALITY} left out"
        + degenerate_summary(len(refused), 0 if refused else sum(flags))
    )
    if not refused:
        return kept
    return [entry for entry, bad in zip(kept, flags, strict=True) if not bad]


def _store_or_append(args: argparse.Namespace, entries: list[Entry], source: str) -> int:
    """Write ``entries`` to the store, or append them to ``--output``."""
    if args.output is not None:
        _append_csv(args.output, entries)
        _note(f"{args.output}: {len(entries)} entries appended")
        return 0
    return _write(args, entries, f"{len(entries)} entries from {source}")


def _append_csv(path: Path, entries: list[Entry]) -> None:
    """Append to a streamguard CSV, in the columns of its header (a new file gets the
    columns ``entries`` need)."""
    columns = _header_of(path)
    rows: list[Sequence[str]] = []
    if columns is None:
        columns = columns_of(entries)
        rows.append(columns)
    else:
        if missing := set(columns_of(entries)) - set(columns):
            needed = ", ".join(sorted(missing))
            raise StreamguardError(f"{path}: header lacks column(s) {needed}; use a new file")
    rows += [csv_row(entry, columns) for entry in entries]
    try:
        with path.open("a", newline="", encoding="utf-8") as output:
            csv.writer(output).writerows(rows)
    except OSError as exc:
        raise StreamguardError(f"{path}: cannot write ({exc.strerror})") from None


def _header_of(path: Path) -> tuple[str, ...] | None:
    """The columns a streamguard CSV's header names; None for a missing or empty file."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as existing:
            header = next(csv.reader(existing), None)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamguardError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    return None if not header else tuple(name.strip().lower() for name in header)


def _write(args: argparse.Namespace, entries: list[Entry], what: str) -> int:
    async def work(store: BlocklistStore) -> int:
        added, updated = await store.write(entries, source="cli", now=time.time())
        _note(f"{what}: {added} added, {updated} updated")
        return 0

    return _with_store(args, work)


def cmd_remove(args: argparse.Namespace) -> int:
    async def work(store: BlocklistStore) -> int:
        removed = await store.remove([(args.list, entry_id) for entry_id in args.ids])
        _note(f"removed {removed} of {len(args.ids)} ({len(args.ids) - removed} not found)")
        return 0

    return _with_store(args, work)


def cmd_stats(args: argparse.Namespace) -> int:
    async def work(store: BlocklistStore) -> int:
        counts = await store.counts()
        position = await store.position()
        total = sum(counts["algo"].values())
        if args.json:
            print(json.dumps({"entries": total, "version": position.version, **counts}))
            return 0
        print(f"entries: {total} (version {position.version})")
        for kind in ("algo", "list", "category"):
            for name, count in sorted(counts[kind].items(), key=lambda item: -item[1]):
                print(f"  {kind:<9} {name:<24} {count}")
        return 0

    return _with_store(args, work)


def cmd_export(args: argparse.Namespace) -> int:
    async def work(store: BlocklistStore) -> int:
        output: TextIO = sys.stdout
        if args.output is not None:
            try:
                output = args.output.open("w", newline="", encoding="utf-8")
            except OSError as exc:
                raise StreamguardError(f"{args.output}: cannot write ({exc.strerror})") from None
        count = 0
        try:
            writer = csv.writer(output, lineterminator="\n")
            writer.writerow([*COLUMNS, "source", "added_at"])
            async for stored in store.export():
                writer.writerow([*csv_row(stored.entry), stored.source, f"{stored.added_at:.3f}"])
                count += 1
        finally:
            if output is not sys.stdout:
                output.close()
        _note(f"exported {count} entries")
        return 0

    return _with_store(args, work)
