"""Open Media Match's matcher and hasher routes, answered as OMM answers them, so that an
OMM client can point at streamguard unchanged (docs/api.md, "Open Media Match").

OMM's banks are streamguard's lists, its signal types streamguard's algorithms, and its
``bank_content_id`` an entry's id: a string here, where OMM's is a number. Distances are
strings, as OMM's ``pretty_str`` gives them. What differs on purpose: a hash too near a
featureless picture's matches nothing (OMM matches a black frame's hash like any other),
and no route fetches a URL (OMM's ``url`` parameter): POST the file.
"""

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from streamguard.api.answers import count
from streamguard.api.context import CONTEXT, ApiContext
from streamguard.api.refusals import malformed, media_refusal
from streamguard.api.routes import parse_frame_hash, read_in_time
from streamguard.api.scans import UPLOAD_NAME, read_still
from streamguard.detect.matcher import Match
from streamguard.errors import SourceError
from streamguard.hashing import ALGORITHMS
from streamguard.hashing.picture import AnimatedPicture, hash_picture
from streamguard.hashing.vpdq import hash_container
from streamguard.hashing.vpdq_signal import format_signal
from streamguard.ingest.upload import open_upload

_URL_REFUSED = "streamguard fetches no URLs: POST the file (multipart field photo or video)"


def _banks(request: web.Request) -> set[str] | None:
    banks = request.query.get("banks")
    return {bank.strip() for bank in banks.split(",") if bank.strip()} if banks else None


def _by_bank(matches: Iterable[Match], banks: set[str] | None) -> dict[str, list[dict[str, str]]]:
    """OMM's ``{bank: [{"bank_content_id", "distance"}]}``."""
    answer: dict[str, list[dict[str, str]]] = {}
    for match in matches:
        entry = match.hit.entry
        if banks is None or entry.list in banks:
            item = {"bank_content_id": entry.id, "distance": str(match.hit.distance)}
            answer.setdefault(entry.list, []).append(item)
    return answer


def _signal_matches(request: web.Request, context: ApiContext) -> list[Match]:
    signal_type, signal = request.query.get("signal_type"), request.query.get("signal")
    if not signal_type or not signal:
        raise malformed("signal and signal_type are required")
    if signal_type not in ALGORITHMS:
        raise malformed(f"No such SignalType '{signal_type[:40]}'")
    verdict = context.matcher.hashes([parse_frame_hash(signal_type, signal)], "hash")
    count(verdict)
    return verdict.matches


async def raw_lookup(request: web.Request) -> web.Response:
    """``GET /m/raw_lookup?signal_type=pdq&signal=HEX[&include_distance=true][&banks=]``"""
    context = request.app[CONTEXT]
    context.require_ready()
    matches = _signal_matches(request, context)
    banks = _banks(request)
    chosen = [m for m in matches if banks is None or m.hit.entry.list in banks]
    if request.query.get("include_distance", "false").lower() in ("true", "1"):
        found: list[Any] = [
            {"bank_content_id": m.hit.entry.id, "distance": str(m.hit.distance)} for m in chosen
        ]
    else:
        found = [m.hit.entry.id for m in chosen]
    return web.json_response({"matches": found})


async def lookup_get(request: web.Request) -> web.Response:
    """``GET /m/lookup?signal_type=pdq&signal=HEX``: ``{bank: [...]}``."""
    context = request.app[CONTEXT]
    if "url" in request.query:
        raise malformed(_URL_REFUSED)
    context.require_ready()
    return web.json_response(_by_bank(_signal_matches(request, context), _banks(request)))


async def lookup_post(request: web.Request) -> web.Response:
    """``POST /m/lookup`` (multipart ``photo`` or ``video``): ``{algo: {bank: [...]}}``."""
    context = request.app[CONTEXT]
    context.require_ready()
    upload, deadline = await read_in_time(request, context)
    verdict, _ = await context.scans.upload(upload, deadline)
    count(verdict)
    answer: dict[str, Any] = {}
    for algo in context.blocklist.algos:
        matches = [m for m in verdict.matches if m.hash.algo == algo]
        answer[algo] = _by_bank(matches, _banks(request))
    return web.json_response(answer)


async def index_status(request: web.Request) -> web.Response:
    """``GET /m/index/status[?signal_type=]``: per algorithm, whether it has entries, how
    many, and when the index was last known to equal the list (``built_to``)."""
    context = request.app[CONTEXT]
    wanted = request.query.get("signal_type")
    if wanted is not None and wanted not in ALGORITHMS:
        raise malformed(f"No such signal type '{wanted[:40]}'")
    counts = context.blocklist.counts() if context.ready else {}
    built_to = context.built_to() if context.ready else -1
    answer = {}
    for algo in [wanted] if wanted else ALGORITHMS:
        size = counts.get(algo, 0)
        answer[algo] = {"built_to": built_to if size else -1, "present": size > 0, "size": size}
    return web.json_response(answer)


async def hash_get(request: web.Request) -> web.Response:
    """``GET /h/hash``: OMM fetches ``url``; streamguard does not."""
    raise malformed(_URL_REFUSED)


async def hash_post(request: web.Request) -> web.Response:
    """``POST /h/hash`` (multipart ``photo`` or ``video``): a picture's hashes, or a video's
    vPDQ signal as ThreatExchange writes it."""
    context = request.app[CONTEXT]
    upload, deadline = await read_in_time(request, context)
    settings = context.settings

    def hashes() -> dict[str, str]:
        try:
            picture = read_still(upload, settings.max_picture_pixels)
        except AnimatedPicture:
            picture = None  # its vPDQ, as a video's
        if picture is not None:
            return {h.algo: h.hex for h in hash_picture(picture, ALGORITHMS)}
        try:
            with open_upload(upload.data, UPLOAD_NAME) as container:
                video = hash_container(container, UPLOAD_NAME, max_duration_s=settings.max_video_s)
        except SourceError as exc:
            raise media_refusal(exc) from None
        return {"vpdq": format_signal(video.frames)}

    return web.json_response(await context.scans.run(hashes, deadline))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/m/raw_lookup", raw_lookup, allow_head=False)
    app.router.add_get("/m/lookup", lookup_get, allow_head=False)
    app.router.add_post("/m/lookup", lookup_post)
    app.router.add_get("/m/index/status", index_status, allow_head=False)
    app.router.add_get("/h/hash", hash_get, allow_head=False)
    app.router.add_post("/h/hash", hash_post)
