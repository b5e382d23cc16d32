"""The MediaMTX and SRS adapters against recorded HTTP exchanges.

Neither server is packaged for Debian, so a local HTTP server plays the recorded
request/response pairs in tests/fixtures/enforce/ (built from each project's API
code and documentation; each file says which). The adapter must send exactly the
recorded requests, in order, and the publish hook must answer each recorded hook
request as the media server expects.
"""

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streamguard.enforce import adapters, metrics
from streamguard.enforce.api import MediaApi
from streamguard.enforce.denylist import DenyList
from streamguard.enforce.enforcer import Enforcer
from streamguard.enforce.hook import HOOK_PATH, publish_hook
from streamguard.enforce.targets import ConfigResolver, Target
from streamguard.infra.http import serve

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "enforce"
RECORDINGS = sorted(path.name for path in FIXTURES.glob("*.json"))
SECRET = "hook-secret"


def recording(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def hook_rejections() -> dict[str, float]:
    name = "streamguard_enforce_hook_rejected_total"
    return {
        reason: metrics.REGISTRY.get_sample_value(name, {"reason": reason})
        for reason in metrics.HOOK_REJECT_REASONS
    }


@contextmanager
def recorded_server(exchanges: list[dict[str, Any]]) -> Iterator[tuple[str, list[tuple]]]:
    """Answer each request with the next recorded response; yield (base URL, requests seen)."""
    pending = list(exchanges)
    seen: list[tuple] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            expected = pending.pop(0) if pending else None
            if expected is None or (self.command, self.path) != (
                expected["request"]["method"],
                expected["request"]["path"],
            ):
                self.send_error(418, "not the recorded request")
                return
            response = expected["response"]
            body = (
                json.dumps(response["json"]).encode()
                if "json" in response
                else response["body"].encode()
            )
            self.send_response(response["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = answer

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", RECORDINGS)
def test_drop_sends_exactly_the_recorded_requests(name):
    record = recording(name)
    exchanges = [exchange for drop in record["drops"] for exchange in drop["exchanges"]]
    with recorded_server(exchanges) as (base, seen):
        api = MediaApi(
            base, user=record.get("api_user", ""), password=record.get("api_password", "")
        )
        adapter = adapters.build(record["adapter"], api)
        dropped = [asyncio.run(adapter.drop(Target(record["target"]))) for _ in record["drops"]]
    expected = [(e["request"]["method"], e["request"]["path"]) for e in exchanges]
    assert [(method, path) for method, path, _ in seen] == expected
    assert dropped == [drop["dropped"] for drop in record["drops"]]
    if "api_user" in record:
        assert {auth for *_, auth in seen} == {"Basic c3RyZWFtZ3VhcmQ6YXBpLXBhc3M="}


def post(port: int, query: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{HOOK_PATH}{query}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("name", RECORDINGS)
def test_publish_hook_answers_the_recorded_hook_requests(name, tmp_path):
    record = recording(name)
    adapter = adapters.build(record["adapter"], MediaApi("http://127.0.0.1:9"))
    denylist = DenyList(tmp_path / "state.sqlite3")
    denylist.deny(Target(record["target"]), "cam", time.time(), time.time() + 60)
    enforcer = Enforcer(
        adapter,
        ConfigResolver([]),
        denylist,
        deny_for_s=60,
        retry_initial_s=0.1,
        retry_max_s=0.1,
    )
    rejected = hook_rejections()

    async def scenario() -> list[tuple[int, bytes]]:
        hook = publish_hook(adapter, enforcer, SECRET)
        server = await serve("127.0.0.1", 0, {}, {HOOK_PATH: hook})
        port = server.sockets[0].getsockname()[1]
        try:
            calls = [
                asyncio.to_thread(
                    post, port, f"?secret={SECRET}", json.dumps(h["request"]).encode()
                )
                for h in record["hooks"]
            ]
            allowed = next(h["request"] for h in record["hooks"] if h["allowed"])
            calls.append(
                asyncio.to_thread(post, port, "?secret=wrong", json.dumps(allowed).encode())
            )
            calls.append(asyncio.to_thread(post, port, f"?secret={SECRET}", b"{not json"))
            return list(await asyncio.gather(*calls))
        finally:
            server.close()
            await server.wait_closed()

    answers = asyncio.run(scenario())
    denylist.close()
    *recorded, wrong_secret, garbage = answers
    for hook, (status, body) in zip(record["hooks"], recorded, strict=True):
        assert (200 <= status < 300) == hook["allowed"], hook["request"]
        if record["adapter"] == "srs":  # SRS allows only HTTP 200 with the body 0
            assert (status, body) == ((200, b"0") if hook["allowed"] else (403, b"1"))
    assert wrong_secret[0] == 403 and garbage[0] == 403
    moved = {reason: count - rejected[reason] for reason, count in hook_rejections().items()}
    assert moved == {"bad_secret": 1, "bad_request": 1}
