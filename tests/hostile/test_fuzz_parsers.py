"""Hypothesis against every parser of untrusted input: each either accepts or refuses
with its own error, never with another exception.

- blocklist files (what `blocklist import` and `scan --blocklist` read);
- commands on the MQTT control topic and the nginx-rtmp / MediaMTX webhooks, against
  a real redis-server, so an accepted command is also one Redis can store;
- kill events (what `enforce` reads from MQTT) and the publish hook media servers call;
- [policy] tables.

Inputs mix random bytes with near-valid ones: JSON of the right shape with wrong
types, lone surrogates (JSON escapes them, Python strings keep them, UTF-8 cannot
encode them), nesting past Python's recursion limit, integers past its 4300 digits.
"""

import asyncio
import json
import logging
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from streamguard.blocklist.entry import Entry, parse_entry
from streamguard.blocklist.formats import load_blocklist_file
from streamguard.config import ClusterSettings, ControlSettings, Settings, StreamConfig
from streamguard.config.errors import ConfigError as PolicyError
from streamguard.config.policy import Policy
from streamguard.config.policy_table import parse_policy
from streamguard.enforce.adapters import ADAPTERS
from streamguard.enforce.denylist import DenyList
from streamguard.enforce.enforcer import Enforcer
from streamguard.enforce.events import InvalidEvent, KillOrder, parse_kill
from streamguard.enforce.hook import publish_hook
from streamguard.enforce.targets import ConfigResolver
from streamguard.errors import BlocklistFormatError
from streamguard.events.schema import SCHEMA
from streamguard.hashing import ALGORITHMS
from streamguard.infra.http import Request
from streamguard.infra.redis import RedisSettings
from streamguard.runtime.control import ControlPlane

from ..support.redis import RedisServer
from .contract import DEEP, DOCUMENTED_STREAM_ID, HUGE_INT, assert_blocklist_error, assert_one_line

SECRET = "s3cret"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d"])
texts = st.text(max_size=24) | SURROGATES
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def encoded(value) -> bytes:
    """JSON as a client would send it (lone surrogates become \\udXXX escapes)."""
    return json.dumps(value).encode()


EDGE_PAYLOADS = [DEEP, HUGE_INT, b"\xff\xfe\x00", b"", b"null", b"\x00" * 10]

# -- blocklist files ----------------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"
blocklist_pieces = (
    st.sampled_from(
        [
            "algo,hash,id,list,category,label\n",
            "signal_type,signal_str,category,tags\n",
            "td_indicator_type,td_raw_indicator,td_status\n",
            "pdq,",
            "phash,",
            "dhash,",
            "hash_pdq ",
            "pdq",
            ",",
            "\t",
            "\n",
            "\r\n",
            '"',
            "#",
            " ",
            "{",
            "}",
            '{"algo": "pdq", "hash": "',
            '"}\n',
            "POSITIVE_CLASS",
            "NEGATIVE_CLASS",
            "MALICIOUS",
            "\ufeff",
            "\x00",
            "e-1",
            "csam",
        ]
    )
    | st.text(alphabet=HEX, min_size=16, max_size=64)
    | st.sampled_from(["a" * 64, "f" * 16, "0" * 64])
    | st.text(max_size=8)
)
blocklist_files = st.one_of(
    st.lists(blocklist_pieces, max_size=30).map(lambda parts: "".join(parts).encode()),
    st.binary(max_size=200),
)


@FUZZ
@given(data=blocklist_files, algo=st.sampled_from([None, "pdq", "phash", "dhash"]))
@example(data=b'{"algo": "pdq", "hash": ' + DEEP + b"}\n", algo=None)
@example(data=b'{"algo": "pdq", "hash": ' + b"1" * 5000 + b"}\n", algo=None)
@example(data=b"algo,hash\npdq," + b"\xff" * 64 + b"\n", algo=None)
@example(data=b"algo,hash\nae2cc8338496ff4a-label,x\n", algo=None)  # a hash run into text
def test_blocklist_files(tmp_path_factory, data, algo):
    path = tmp_path_factory.mktemp("lists") / "list.csv"
    path.write_bytes(data)
    try:
        entries = load_blocklist_file(path, algo=algo)
    except BlocklistFormatError as exc:
        assert_blocklist_error(str(exc), path, data)  # one line, no hash value
        return
    assert entries and all(isinstance(entry, Entry) for entry in entries)


@FUZZ
@given(
    row=st.dictionaries(
        st.sampled_from(["algo", "hash", "id", "list", "category", "label", "x"]), texts
    ),
    default_algo=st.sampled_from([None, "pdq", "PDQ", "hash_pdq", "", "md5"]),
)
def test_blocklist_records(row, default_algo):
    try:
        entry = parse_entry(row, default_algo=default_algo, default_list="fuzz")
    except ValueError:
        return
    assert entry.algo in ("pdq", "phash", "dhash") and entry.digest


# -- control topic and webhooks -----------------------------------------------------------

commands = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["start", "stop", "pause"]) | json_values,
        "url": st.sampled_from(
            ["rtmp://media/live/k", "file:///etc/passwd", "gopher://x/", "http://h/a.m3u8"]
        )
        | texts.map(lambda t: f"rtmp://media/live/{t}")
        | json_values,
        "sample": st.sampled_from(["keyframes", "interval:2", "interval:-1"]) | json_values,
        "secret": st.just(SECRET) | texts | json_values,
        "extra": json_values,
    },
)
payloads = st.one_of(
    commands.map(encoded), json_values.map(encoded), st.binary(max_size=200)
) | st.sampled_from(EDGE_PAYLOADS)
stream_ids = st.sampled_from(["cam1", "live-0a1b", "bad id!", "", "x" * 200]) | texts


def counted(source: str) -> float:
    """Every control command counted for ``source``, whatever its action and result."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "streamguard_control_commands"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["source"] == source
    )


@pytest.fixture
def plane(redis: RedisServer):
    settings_ = Settings(
        redis=RedisSettings(url=redis.url),
        cluster=ClusterSettings(enabled=True),
        control=ControlSettings(pull_url="rtmp://media:1935/{app}/{name}"),
    )
    loop = asyncio.new_event_loop()
    subject = ControlPlane(settings_, SECRET)
    yield subject, loop
    loop.run_until_complete(subject.close())
    loop.close()


@FUZZ
@given(stream_id=stream_ids, payload=payloads)
@example(stream_id="cam1", payload=encoded({"action": "stop", "secret": "\ud800"}))
@example(
    stream_id="cam1",
    payload=encoded({"action": "start", "secret": SECRET, "url": "rtmp://h/live/\udc80"}),
)
@example(stream_id="cam1", payload=DEEP)
# Found by atheris (atheris_targets.py): a URL urlsplit refuses raised out of the handler;
# line breaks from the topic, a JSON key or `sample` forged log lines; "cam\n" passed as an id.
@example(
    stream_id="cam1",
    payload=encoded({"action": "start", "url": "rtmp://\u200a=[", "secret": SECRET}),
)
@example(stream_id="cam\n1", payload=b"{")
@example(stream_id="cam1", payload=encoded({"action": "start", "\rl": "x", "secret": SECRET}))
@example(
    stream_id="cam1",
    payload=encoded(
        {"action": "start", "url": "rtmp://h/a/k", "sample": "key\rames", "secret": SECRET}
    ),
)
@example(stream_id="cm\n", payload=encoded({"action": "stop", "secret": SECRET}))
# Not found by atheris (no new coverage): a URL without a scheme is refused as `file`,
# and that refusal showed it unredacted, line breaks and all.
@example(stream_id="cam1", payload=encoded({"action": "start", "url": "x\ny", "secret": SECRET}))
def test_control_commands_are_refused_or_carried_out(plane, caplog, stream_id, payload):
    subject, loop = plane
    caplog.clear()
    caplog.set_level(logging.INFO, logger="streamguard")
    before = counted("mqtt")
    loop.run_until_complete(subject.on_message(stream_id, payload))  # never raises
    assert counted("mqtt") == before + 1
    for record in caplog.records:  # one line each, whatever the topic and payload hold
        assert_one_line(record.getMessage())


forms = st.dictionaries(
    st.sampled_from(["call", "app", "name", "event", "path", "secret", "x"]) | texts,
    st.sampled_from(["publish", "publish_done", "ready", "not_ready", "live", "live/k"]) | texts,
    max_size=5,
)


@st.composite
def webhook_requests(draw) -> Request:
    route = draw(st.sampled_from(["/control/nginx-rtmp", "/control/mediamtx"]))
    query = draw(forms)
    if draw(st.booleans()):
        query["secret"] = SECRET
    kind = draw(st.sampled_from(["form", "json", "bytes"]))
    headers = {}
    if kind == "json":
        headers["content-type"] = "application/json"
        body = draw(forms.map(encoded) | json_values.map(encoded) | st.just(DEEP))
    elif kind == "form":
        body = "&".join(f"{k}={v}" for k, v in draw(forms).items()).encode("utf-8", "replace")
    else:
        body = draw(st.binary(max_size=100))
    return Request(route, query, headers, body, "127.0.0.1")


@FUZZ
@given(request=webhook_requests())
@example(
    request=Request(
        "/control/mediamtx",
        {"secret": SECRET},
        {"content-type": "application/json"},
        encoded({"event": "ready", "path": "live/\ud800"}),
        "127.0.0.1",
    )
)
def test_webhooks_answer_every_request(plane, request):
    subject, loop = plane
    before = counted("webhook")
    response = loop.run_until_complete(subject.webhooks()[request.path](request))
    assert response.status in (200, 400, 403), response
    assert counted("webhook") == before + 1


# -- enforcement ------------------------------------------------------------------------

kill_events = st.fixed_dictionaries(
    {
        "schema": st.just(SCHEMA) | texts,
        "action": st.sampled_from(["kill", "review"]) | json_values,
        "stream_id": st.sampled_from(["cam", "other"]) | json_values,
        "event_id": st.text(min_size=1, max_size=130) | json_values,
    },
    optional={"detected_at": st.sampled_from(["2026-01-01T00:00:00Z"]) | json_values},
)


@settings(max_examples=1000, deadline=None)
@given(
    payload=kill_events.map(encoded) | payloads,
    topic_stream_id=st.sampled_from(["cam", "other"]) | texts,
)
@example(payload=DEEP, topic_stream_id="cam")
@example(payload=b'{"schema": ' + b"1" * 5000 + b"}", topic_stream_id="cam")
@example(  # a trailing line break passed the stream id check
    payload=encoded({"schema": SCHEMA, "action": "kill", "stream_id": "cam\n", "event_id": "e"}),
    topic_stream_id="cam\n",
)
def test_kill_events(payload, topic_stream_id):
    try:
        order = parse_kill(payload, topic_stream_id)
    except InvalidEvent as exc:
        assert_one_line(str(exc))
        return
    if order is not None:
        assert isinstance(order, KillOrder) and order.stream_id == topic_stream_id
        assert DOCUMENTED_STREAM_ID.fullmatch(order.stream_id), order


@pytest.fixture(params=sorted(ADAPTERS))
def hook(request, tmp_path):
    adapter = ADAPTERS[request.param](None)
    resolver = ConfigResolver([StreamConfig("cam", "rtmp://media/live/cam-key")])
    denylist = DenyList(tmp_path / "deny.sqlite3")
    enforcer = Enforcer(
        adapter, resolver, denylist, deny_for_s=600, retry_initial_s=1, retry_max_s=1
    )
    yield adapter, publish_hook(adapter, enforcer, SECRET)
    denylist.close()


hook_bodies = (
    forms.map(lambda form: "&".join(f"{k}={v}" for k, v in form.items()).encode("utf-8", "replace"))
    | forms.map(encoded)
    | st.fixed_dictionaries(
        {
            "action": st.sampled_from(["publish", "on_publish"]),
            "path": texts,
            "app": texts,
            "stream": texts,
        }
    ).map(encoded)
    | st.binary(max_size=100)
    | st.just(DEEP)
)


@FUZZ
@given(body=hook_bodies, secret=st.just(SECRET) | st.text(max_size=10))  # as HTTP parsing gives
@example(body=encoded({"action": "publish", "path": "live/\ud800"}), secret=SECRET)
@example(body=encoded({"action": "on_publish", "app": "live", "stream": "\udfff"}), secret=SECRET)
def test_publish_hook_answers_allow_or_deny(hook, body, secret):
    adapter, handle = hook
    response = handle(Request("/on_publish", {"secret": secret}, {}, body, "127.0.0.1"))
    assert response in (adapter.allow, adapter.deny)


# -- [policy] ---------------------------------------------------------------------------

toml_scalars = (
    st.booleans()
    | st.integers(-5, 100)
    | st.floats()
    | st.sampled_from(["kill", "review", "ignore", "pdq", ""])
)
rule_keys = st.sampled_from(
    [
        "action",
        "unconfirmed",
        "window_s",
        "confirmations",
        "min_quality",
        "max_distance",
        "instant_distance",
        "incident_gap_s",
        "keep_watching_after_kill",
        "nonsense",
    ]
)
distance_maps = st.dictionaries(
    st.sampled_from(["pdq", "phash", "dhash", "md5"]), st.integers(-3, 300) | toml_scalars
)
rules = st.dictionaries(rule_keys, toml_scalars | distance_maps, max_size=5)
policy_tables = st.dictionaries(
    rule_keys | st.sampled_from(["csam", "terror", "TEST"]),
    toml_scalars | distance_maps | rules,
    max_size=6,
)


@FUZZ
@given(table=policy_tables | json_values)
@example(table={"incident_gap_s": float("nan")})
@example(table={"csam": {"window_s": float("inf")}})
def test_policy_tables(table):
    try:
        policy = parse_policy("policy", table)
    except PolicyError:
        return
    assert isinstance(policy, Policy)
    seconds = [
        policy.incident_gap_s,
        *(r.window_s for r in (policy.default, *policy.categories.values())),
    ]
    assert all(0 < s < math.inf for s in seconds), seconds  # nan would never end an incident
    for rule in (policy.default, *policy.categories.values()):
        for limits in (rule.max_distance, rule.instant_distance):
            assert all(0 <= n <= ALGORITHMS[a].max_distance for a, n in limits.items()), limits
