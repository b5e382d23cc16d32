"""The API as an aiohttp application: its routes, and the one middleware every request
passes through (the token, refusals as JSON, metrics, the log line).

aiohttp parses HTTP/1.1 (keep-alive, chunked bodies, pipelining) and multipart; chosen
over Starlette and uvicorn because its multipart reader streams parts without spooling
them to a temporary file (Starlette's form parser writes parts over 1 MB to disk, and an
upload must never touch the disk), and it is one well-kept package with a C parser where
Starlette needs uvicorn, httptools and python-multipart for the same.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from streamguard.api import omm, routes
from streamguard.api.context import CLIENT, CONTEXT, ApiContext
from streamguard.api.refusals import Refusal
from streamguard.api.tokens import ANONYMOUS
from streamguard.observability import metrics

log = logging.getLogger("streamguard.api")
_METHODS = frozenset({"GET", "POST", "HEAD"})  # any other is counted as "other"
OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
OPENAPI = resources.files("streamguard.api").joinpath("openapi.json").read_bytes()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(context: ApiContext) -> web.Application:
    """The application; ``client_max_size`` is left to the routes' own bounded reads."""
    app = web.Application(middlewares=[_every_request])
    app[CONTEXT] = context
    routes.add_routes(app)
    omm.add_routes(app)
    app.router.add_get("/healthz", _healthz, allow_head=False)
    app.router.add_get("/readyz", _readyz, allow_head=False)
    app.router.add_get("/metrics", _metrics, allow_head=False)
    app.router.add_get("/openapi.json", _openapi, allow_head=False)
    return app


def make_runner(context: ApiContext, shutdown_timeout_s: float = 5.0) -> web.AppRunner:
    """The application's runner: no access log (its lines carry query strings, so hashes;
    the middleware counts requests instead), and one second, not aiohttp's ten, to read
    what is left of a refused body before closing (a slow client holds nothing long)."""
    return web.AppRunner(
        build_app(context),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout_s,
        lingering_time=1.0,
    )


@web.middleware
async def _every_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authorize, answer, and count the answer: refusals as one JSON line, a handler's
    exception as a 500 (a bug: logged with its traceback and counted)."""
    started = time.perf_counter()
    route = _route(request)
    request[CLIENT] = ANONYMOUS
    metrics.API_IN_FLIGHT.inc()
    try:
        if route not in OPEN_ROUTES:
            _authorize(request)
        response = await handler(request)
    except Refusal as refusal:
        response = _refused(request, route, refusal)
    except web.HTTPException as exc:  # aiohttp's own: 404, 405, a malformed request
        response = _error(route, exc.status, exc.reason)
    except Exception:
        log.exception("API %s %s failed", request.method, route)  # the route: no query
        metrics.INTERNAL_ERRORS.inc()
        response = _error(route, 500, "internal error")
    finally:
        metrics.API_IN_FLIGHT.dec()
    client = request[CLIENT]
    method = request.method if request.method in _METHODS else "other"
    metrics.API_REQUESTS.labels(method, route, str(response.status), client).inc()
    metrics.API_DURATION.labels(method, route).observe(time.perf_counter() - started)
    return response


def _route(request: web.Request) -> str:
    """The route's template: never the path a client chose (unbounded labels)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "other"


def _authorize(request: web.Request) -> None:
    tokens = request.app[CONTEXT].tokens
    if not tokens:
        return  # open: allowed on loopback only (api/service.py)
    client = tokens.client(request.headers.get("Authorization"))
    if client is None:
        raise Refusal(401, "unauthorized", "missing or unknown bearer token")
    request[CLIENT] = client


def _refused(request: web.Request, route: str, refusal: Refusal) -> web.Response:
    metrics.API_REFUSALS.labels(refusal.reason).inc()
    log.info(
        "API %s %s from %s refused: %d %s (%s)",
        request.method,
        route,
        request[CLIENT],
        refusal.status,
        refusal.reason,
        refusal.message,
    )
    response = _error(route, refusal.status, refusal.message, refusal.reason)
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    elif refusal.status == 503:
        response.headers["Retry-After"] = "1"
    return response


def _error(route: str, status: int, message: str, reason: str = "") -> web.Response:
    """Open Media Match's routes answer ``{"message"}`` as OMM does; streamguard's give
    ``{"error", "reason"}``."""
    if route.startswith(("/m/", "/h/")):
        body: dict[str, str] = {"message": message}
    else:
        body = {"error": message, "reason": reason or _REASON_OF.get(status, "malformed")}
    return web.json_response(body, status=status)


_REASON_OF = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 500: "internal"}


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"alive": True})


async def _readyz(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    status = context.blocklist_status()
    ready = context.ready
    return web.json_response({"ready": ready, "blocklist": status}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    response = web.Response(body=metrics.render(None))
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI, content_type="application/json")
