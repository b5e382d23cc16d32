"""streamguard's own routes: ``/v1/match`` (an upload, or one hash) and ``/v1/lookup``
(many hashes), docs/api.md."""

import asyncio
import json
import time
from collections.abc import Awaitable
from functools import partial
from typing import TypeVar

from aiohttp import web

from streamguard.api.answers import hash_verdict_json, verdict_json
from streamguard.api.context import CONTEXT, ApiContext
from streamguard.api.refusals import Refusal, malformed
from streamguard.api.uploads import Upload, read_bounded, read_upload
from streamguard.blocklist.entry import parse_hash, parse_quality
from streamguard.detect.upload import UploadMatcher, Verdict
from streamguard.hashing import FrameHash

Read = TypeVar("Read")
LOOKUP_ENTRY_BYTES = 1024  # a lookup body may hold this much per hash asked for


async def match_upload(request: web.Request) -> web.Response:
    """``POST /v1/match``: a picture or a video."""
    context = request.app[CONTEXT]
    context.require_ready()
    upload, deadline = await read_in_time(request, context)
    verdict, media = await context.scans.upload(upload, deadline)
    answer = {"media": media.to_json(), **verdict_json(verdict, times=media.kind == "video")}
    return web.json_response(answer)


async def match_hash(request: web.Request) -> web.Response:
    """``GET /v1/match?algo=ALGO&hash=HEX[&quality=Q]``."""
    context = request.app[CONTEXT]
    context.require_ready()
    query = request.query
    algo, hex_hash = query.get("algo", ""), query.get("hash", "")
    frame_hash = parse_frame_hash(algo, hex_hash, query.get("quality"))
    verdict = context.matcher.hashes([frame_hash], "hash")
    return web.json_response(hash_verdict_json(verdict))


async def lookup(request: web.Request) -> web.Response:
    """``POST /v1/lookup`` with ``{"hashes": [{"algo", "hash", "quality"?}, ...]}``."""
    context = request.app[CONTEXT]
    context.require_ready()
    limit = context.settings.max_lookup_hashes
    deadline = time.monotonic() + context.settings.request_timeout_s
    body = await _in_time(read_bounded(request, limit * LOOKUP_ENTRY_BYTES), context)
    hashes = _parse_lookup(body, limit)
    verdicts = await context.scans.run(partial(_look_up, context.matcher, hashes), deadline)
    return web.json_response({"results": [hash_verdict_json(v) for v in verdicts]})


async def read_in_time(request: web.Request, context: ApiContext) -> tuple[Upload, float]:
    """The request's upload, read within the request time limit, and the deadline its scan
    has (the same limit, from the request's start)."""
    deadline = time.monotonic() + context.settings.request_timeout_s
    upload = await _in_time(read_upload(request, context.settings.max_body_bytes), context)
    return upload, deadline


async def _in_time(reading: Awaitable[Read], context: ApiContext) -> Read:
    timeout_s = context.settings.request_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await reading
    except TimeoutError:
        raise Refusal(408, "timeout", f"body not received within {timeout_s:g} s") from None


def parse_frame_hash(algo: str, hex_hash: str, quality: str | None = None) -> FrameHash:
    """A hash as a client sends it (Refusal 400 saying what is wrong, never the hash)."""
    if not algo or not hex_hash:
        raise malformed("give algo and hash")
    try:
        name, digest = parse_hash(algo, hex_hash)
        score = parse_quality(quality or "")
    except ValueError as exc:
        raise malformed(str(exc)) from None
    if score is not None and name != "pdq":
        raise malformed(f"quality is PDQ's; {name} has none")
    return FrameHash(name, digest, score)


def _parse_lookup(body: bytes, limit: int) -> list[FrameHash]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise malformed("body is not JSON") from None
    hashes = document.get("hashes") if isinstance(document, dict) else None
    if not isinstance(hashes, list) or not hashes:
        raise malformed('expected {"hashes": [{"algo": ..., "hash": ...}, ...]}')
    if len(hashes) > limit:
        raise Refusal(413, "too_large", f"{len(hashes)} hashes; at most {limit} per request")
    parsed = []
    for number, item in enumerate(hashes):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key, ""), str | int) for key in ("algo", "hash", "quality")
        ):
            raise malformed(f"hashes[{number}]: expected an object with algo and hash")
        try:
            quality = item.get("quality")
            parsed.append(
                parse_frame_hash(
                    str(item.get("algo", "")),
                    str(item.get("hash", "")),
                    None if quality is None else str(quality),
                )
            )
        except Refusal as refusal:
            raise malformed(f"hashes[{number}]: {refusal.message}") from None
    return parsed


def _look_up(matcher: UploadMatcher, hashes: list[FrameHash]) -> list[Verdict]:
    return [matcher.hashes([frame_hash], "hash") for frame_hash in hashes]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/match", match_upload)
    app.router.add_get("/v1/match", match_hash, allow_head=False)
    app.router.add_post("/v1/lookup", lookup)
