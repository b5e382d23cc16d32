"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers of untrusted input.

    python -m tests.hostile.atheris_targets TARGET [libFuzzer flags] [CORPUS_DIR ...]

Each target takes raw bytes and checks the contract of test_fuzz_parsers.py: a valid
result or the parser's own error, in one line (contract.py). Any other exception or a
failed check is a crash; libFuzzer saves the input as ``crash-…`` in a temporary
directory (unless ``-artifact_prefix`` names another) and prints the traceback.

- ``blocklist``: a blocklist file (every format of docs/blocklist-formats.md). The
  first byte picks ``--algo`` (bits 0-1) and a chunk size for the reading (bits 2-7);
  the rest is the file. The result must not depend on the chunk size nor on the
  column-wise fast path, and errors never show a hash value.
- ``kill``: ``parse_kill`` of the enforcer, ``TOPIC_STREAM_ID NUL PAYLOAD``.
- ``control``: a message on the MQTT control topic, ``TOPIC_STREAM_ID NUL PAYLOAD``.
- ``webhook``: the nginx-rtmp and MediaMTX webhooks. The first byte picks the route
  (bit 0) and a JSON content type (bit 1); then ``QUERY NUL BODY``.

Without a NUL the topic's stream id is ``cam-1`` (and the query empty). The control
targets run the real ControlPlane with its Redis registry replaced by an in-memory
one: every command is checked and carried out, and each log line it writes is checked.

The seed corpus is made from the bundled samples and the examples in docs/ in a temporary
directory (printed at the start, under $TMPDIR); new inputs go to the first CORPUS_DIR,
else to that directory. Nothing is written into the repository.
"""

import json
import logging
import math
import re
import sys
import tempfile
import tomllib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock
from urllib.parse import parse_qsl

from .contract import (
    DEEP,
    DOCUMENTED_STREAM_ID,
    HUGE_INT,
    assert_blocklist_error,
    assert_no_hash,
    assert_one_line,
)


def _instrumented() -> AbstractContextManager:
    """atheris' coverage instrumentation of streamguard, when this module is the fuzzer."""
    if __name__ != "__main__":
        return nullcontext()
    import atheris

    atheris.enabled_hooks.add("str")
    return atheris.instrument_imports(include=["streamguard"])


with _instrumented():
    from streamguard.blocklist import chunk_parser, formats
    from streamguard.blocklist.entry import Entry
    from streamguard.config import ClusterSettings, ControlSettings, Settings, StreamConfig
    from streamguard.enforce.events import MAX_EVENT_ID_CHARS, InvalidEvent, parse_kill
    from streamguard.errors import BlocklistFormatError
    from streamguard.hashing import ALGORITHMS
    from streamguard.infra.http import Request
    from streamguard.infra.redis import RedisSettings
    from streamguard.ingest.urls import scheme_of
    from streamguard.runtime.control import ControlPlane
    from streamguard.samples import SAMPLES_DIR

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret"
DEFAULT_TOPIC_STREAM_ID = "cam-1"
ALGOS = (None, "pdq", "phash", "dhash")
T = TypeVar("T")


@cache
def _work() -> Path:
    """A temporary directory (under $TMPDIR) for seeds, corpus, crashes and the blocklist
    file of each input; libFuzzer ends the process without Python's clean-up, so it stays."""
    return Path(tempfile.mkdtemp(prefix="atheris-"))


# -- blocklist files ----------------------------------------------------------------------


_UNDECODABLE = ": cannot read (UnicodeDecodeError)"


def _load(path: Path, algo: str | None) -> list[Entry] | str:
    """The entries of ``path``, or the message of its BlocklistFormatError."""
    try:
        return formats.load_blocklist_file(path, algo=algo)
    except BlocklistFormatError as exc:
        return str(exc)


def blocklist(data: bytes) -> None:
    """A blocklist file: entries, or one line ``FILE: …`` without a hash value."""
    if not data:
        return
    algo, chunk_chars, content = ALGOS[data[0] & 3], 1 + (data[0] >> 2), data[1:]
    path = _work() / "list.csv"
    path.write_bytes(content)
    outcome = _load(path, algo)
    if isinstance(outcome, str):
        assert_blocklist_error(outcome, path, content)
    else:
        for entry in outcome:
            assert 2 * len(entry.digest) == ALGORITHMS[entry.algo].hex_length, entry
            assert entry.id and entry.list and entry.category == entry.category.lower(), entry
        assert len({entry.key for entry in outcome}) == len(outcome), "duplicate keys"
    # docs/blocklist-formats.md: blocks and the column-wise parsing do not change the result.
    with mock.patch.object(formats, "_CHUNK_CHARS", chunk_chars):
        assert _same(_load(path, algo), outcome), f"differs when read in blocks of {chunk_chars}"
    with mock.patch.object(chunk_parser.ChunkParser, "fast", lambda self, lines: None):
        assert _same(_load(path, algo), outcome), "differs when parsed line by line"


def _same(outcome: list[Entry] | str, expected: list[Entry] | str) -> bool:
    """The same entries or error; bytes that are not UTF-8 are found when their block is
    read, so a bad line before them may be reported instead."""
    if isinstance(outcome, str) and isinstance(expected, str):
        return outcome == expected or _UNDECODABLE in outcome + expected
    return outcome == expected


# -- kill events --------------------------------------------------------------------------


def _topic_and_payload(data: bytes) -> tuple[str, bytes]:
    """``TOPIC_STREAM_ID NUL PAYLOAD``; MQTT topics are UTF-8 and cannot hold a NUL."""
    topic, sep, payload = data.partition(b"\0")
    if not sep:
        return DEFAULT_TOPIC_STREAM_ID, data
    return topic.decode("utf-8", "replace"), payload


def kill(data: bytes) -> None:
    """A kill order for the topic's stream, None (review) or InvalidEvent in one line."""
    topic_stream_id, payload = _topic_and_payload(data)
    try:
        order = parse_kill(payload, topic_stream_id)
    except InvalidEvent as exc:
        assert_one_line(str(exc))
        assert_no_hash(str(exc), payload)  # the reason, never the payload
        return
    if order is not None:
        assert order.stream_id == topic_stream_id, order
        assert DOCUMENTED_STREAM_ID.fullmatch(order.stream_id), order
        assert order.event_id.isprintable() and len(order.event_id) <= MAX_EVENT_ID_CHARS
        assert order.detected_at is None or math.isfinite(order.detected_at), order


# -- control topic and webhooks ------------------------------------------------------------


class _Registry:
    """Redis' registry of streams, in memory: what the control plane carried out."""

    def __init__(self) -> None:
        self.done: list[tuple[str, StreamConfig | str]] = []

    async def register(self, stream: StreamConfig, source: str) -> str:
        self.done.append(("start", stream))
        return "added"

    async def unregister(self, stream_id: str) -> bool:
        self.done.append(("stop", stream_id))
        return True


class _Lines(logging.Handler):
    """The messages logged, as the text log format would print them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@cache
def _plane() -> tuple[ControlPlane, _Registry, _Lines]:
    settings = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1"),  # never connected: the registry is fake
        cluster=ClusterSettings(enabled=True),
        control=ControlSettings(pull_url="rtmp://media:1935/{app}/{name}"),
    )
    plane = ControlPlane(settings, SECRET)
    plane.registry = registry = _Registry()
    lines = _Lines()
    logger = logging.getLogger("streamguard")
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return plane, registry, lines


def _completed(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (nothing here does I/O); no event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the control plane waited for I/O")


def _handled(run: Callable[[ControlPlane], Coroutine[Any, Any, Any]]) -> Any:
    """``run`` on the control plane: one log line, and what it carried out is valid."""
    plane, registry, lines = _plane()
    registry.done.clear()
    lines.messages.clear()
    result = _completed(run(plane))
    assert len(lines.messages) == 1, lines.messages  # refused or carried out, said once
    assert_one_line(lines.messages[0])
    for action, stream in registry.done:
        stream_id = stream.id if isinstance(stream, StreamConfig) else stream
        assert DOCUMENTED_STREAM_ID.fullmatch(stream_id), (action, stream)
        if isinstance(stream, StreamConfig):
            assert stream.url.isprintable(), stream
            assert scheme_of(stream.url) in plane.settings.ingest.allowed_schemes, stream
            interval_s = stream.sample.interval_s if stream.sample is not None else None
            assert interval_s is None or 0 < interval_s < math.inf, stream
    return result


def control(data: bytes) -> None:
    """A control-topic message: refused or carried out, with one log line."""
    topic_stream_id, payload = _topic_and_payload(data)
    _handled(lambda plane: plane.on_message(topic_stream_id, payload))


WEBHOOK_ROUTES = ("/control/nginx-rtmp", "/control/mediamtx")


def webhook(data: bytes) -> None:
    """A webhook request: 200, 400 or 403, with one log line."""
    if not data:
        return
    route = WEBHOOK_ROUTES[data[0] & 1]
    headers = {"content-type": "application/json"} if data[0] & 2 else {}
    query, _, body = data[1:].partition(b"\0")
    # As observability/http.py reads a request target (latin-1, as HTTP heads are).
    fields = dict(reversed(parse_qsl(query.decode("latin-1"))))
    request = Request(route, fields, headers, body, "127.0.0.1")
    response = _handled(lambda plane: plane.webhooks()[route](request))
    assert response.status in (200, 400, 403), response


TARGETS: dict[str, Callable[[bytes], None]] = {
    "blocklist": blocklist,
    "kill": kill,
    "control": control,
    "webhook": webhook,
}

# -- seeds --------------------------------------------------------------------------------


def _fenced(doc: str) -> Iterator[str]:
    """The fenced code blocks of a docs/ page."""
    yield from re.findall(r"^```[a-z]*\n(.*?)^```", (REPO / "docs" / doc).read_text(), re.S | re.M)


def seeds(name: str) -> list[bytes]:
    """The seed inputs of target ``name``, from the bundled samples and docs/."""
    if name == "blocklist":
        files = [(SAMPLES_DIR / "blocklist.csv").read_bytes()]
        files += [block.encode() for block in _fenced("blocklist-formats.md")]
        files += [b'{"algo": "pdq", "hash": ' + DEEP + b"}\n", HUGE_INT + b"\n"]
        return [bytes([algo]) + file for file in files for algo in range(len(ALGOS))]
    if name == "kill":
        event = next(b for b in _fenced("events.md") if '"schema"' in b)
        stream_id = re.search(r'"stream_id": "([^"]+)"', event)[1]
        review = event.replace('"kill"', '"review"')
        payloads = [event, review, "{}"]
        return [f"{stream_id}\0{p}".encode() for p in payloads] + [DEEP, HUGE_INT]
    if name == "control":
        cluster = (REPO / "docs" / "cluster.md").read_text()
        documented = re.findall(r'`(\{"action".*?\})`', cluster)
        commands = [c.replace('"secret": "…"', f'"secret": "{SECRET}"') for c in documented]
        found = [f"cam1\0{c}".encode() for c in commands] + [DEEP, HUGE_INT]
        for block in _fenced("configuration.md"):  # the [[streams]] examples, as commands
            for stream in tomllib.loads(block).get("streams", []):
                command = {"action": "start", "secret": SECRET, **stream}
                stream_id = command.pop("id")
                found.append(f"{stream_id}\0{json.dumps(command)}".encode())
        return found
    assert name == "webhook", name
    secret = f"secret={SECRET}".encode()
    return [
        b"\0" + secret + b"\0call=publish&app=live&name=key",
        b"\0" + secret + b"\0call=publish_done&app=live&name=key",
        b"\1" + secret + b"&event=ready&path=live/cam\0",
        b"\3" + secret + b'\0{"event": "not_ready", "path": "live/cam"}',
        b"\2" + secret + b"\0" + DEEP,
    ]


def main(argv: list[str]) -> None:
    """Fuzz the target argv[1] with the libFuzzer flags and corpus directories after it."""
    import atheris

    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [CORPUS_DIR ...]")
    name, args = argv[1], argv[2:]
    work = _work()
    paths = [Path(arg) for arg in args if not arg.startswith("-")]
    if not any(path.is_file() for path in paths):  # not reproducing saved inputs
        seed_dir = work / "seeds"
        seed_dir.mkdir()
        for number, seed in enumerate(seeds(name)):
            (seed_dir / f"seed-{number}").write_bytes(seed)
        if not paths:
            (work / "corpus").mkdir()
            args.append(str(work / "corpus"))
        args.append(str(seed_dir))
    if not any(arg.startswith("-artifact_prefix=") for arg in args):
        args.append(f"-artifact_prefix={work}/")
    print(f"atheris_targets: {name}: seeds, corpus and crashes in {work}", file=sys.stderr)
    atheris.Setup([argv[0], *args], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
