"""Enforcement logic without servers: event checks, the deny list, idempotency, retries,
and the metrics that count them."""

import asyncio
import json
import logging
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import generate_latest

import streamguard.observability.metrics  # noqa: F401 (run's metrics: the default registry)
from streamguard import __version__, config
from streamguard.config import ConfigError, EnforceSettings, StreamConfig
from streamguard.enforce import metrics, settings
from streamguard.enforce.api import ApiError
from streamguard.enforce.denylist import SEEN_KEEP_S, DenyList
from streamguard.enforce.enforcer import REDROP_AFTER_S, Enforcer
from streamguard.enforce.events import InvalidEvent, KillOrder, parse_kill
from streamguard.enforce.targets import ConfigResolver, Target, target_of_url
from streamguard.events.schema import rfc3339
from streamguard.events.subscriber import Unhandled
from streamguard.infra.http import Response

CAM = Target("live/cam-key")
DETECTED_AT = 999.5  # half a second before the Clock below starts


def event(**changes) -> bytes:
    fields = {
        "schema": "streamguard.event.v1",
        "event_id": "e-1",
        "action": "kill",
        "stream_id": "cam",
        "stream_url": "rtmp://media/live/***",
        "detected_at": rfc3339(DETECTED_AT),
        "confirmations": 1,
    }
    return json.dumps(fields | changes).encode()


def test_a_kill_event_becomes_an_order():
    assert parse_kill(event(), "cam") == KillOrder("e-1", "cam", DETECTED_AT)
    assert parse_kill(event(action="review"), "cam") is None


@pytest.mark.parametrize("detected_at", [None, 7, "yesterday", "2025-01-01T00:00:04.018"])
def test_a_kill_without_a_usable_detected_at_is_still_a_kill(detected_at):
    assert parse_kill(event(detected_at=detected_at), "cam") == KillOrder("e-1", "cam", None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (event(schema="streamguard.event.v2"), "schema"),
        (event(action="ban"), "action"),
        (event(event_id=""), "event_id"),
        (event(event_id=7), "event_id"),
        (event(event_id="x" * 129), "event_id"),
        (event(event_id="a\x00b"), "unprintable"),
        (event(stream_id="other"), "differs from the topic"),
        (b" " * 70000, "more than"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(payload, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_kill(payload, "cam")


@pytest.mark.parametrize("stream_id", ["", "-cam", "cam/1", "cam+", "#", "c" * 129, "cäm", None])
def test_bad_stream_ids_are_refused(stream_id):
    with pytest.raises(InvalidEvent, match="stream_id"):
        parse_kill(event(stream_id=stream_id), str(stream_id))


def test_targets_come_from_rtmp_urls_only():
    target = target_of_url("rtmp://user:pw@media:1935/live/cam-key?token=x")
    assert target == CAM and (target.app, target.name, target.shown) == (
        "live",
        "cam-key",
        "live/***",
    )
    assert target_of_url("rtmps://media/cam-key") == Target("cam-key")
    assert Target("cam-key").shown == "***" and Target.of("", "cam-key") == Target("cam-key")
    assert target_of_url("https://cdn/live/cam/index.m3u8") is None
    assert target_of_url("rtmp://media/") is None
    resolver = ConfigResolver(
        [
            StreamConfig("cam", "rtmp://media/live/cam-key"),
            StreamConfig("hls", "https://cdn/x.m3u8"),
        ]
    )
    assert resolver.resolve("cam") == CAM and resolver.resolve("nope") is None
    assert resolver.unmapped == ["hls"] and len(resolver) == 2


def test_deny_list_expires_and_survives_a_restart(tmp_path):
    path = tmp_path / "state" / "enforce.sqlite3"
    denylist = DenyList(path)
    assert denylist.deny(CAM, "cam", now=100, until=200) is None
    assert denylist.deny(CAM, "cam", now=150, until=180).until == 200  # never shortened
    assert denylist.denial(CAM, 199).stream_id == "cam"
    assert denylist.denial(CAM, 200) is None and denylist.denial(Target("live/other"), 150) is None
    assert denylist.first_sight("e-1", 100) and not denylist.first_sight("e-1", 101)
    assert [d.stream_id for d in denylist.undropped(150)] == ["cam"]
    denylist.dropped(CAM, 160)
    denylist.close()
    assert path.stat().st_mode & 0o077 == 0
    assert b"cam-key" not in path.read_bytes()  # keys are stored as digests

    reopened = DenyList(path)
    assert reopened.denial(CAM, 170).dropped_at == 160 and reopened.undropped(170) == []
    assert not reopened.first_sight("e-1", 170)
    reopened.prune(100 + SEEN_KEEP_S + 1)
    assert reopened.first_sight("e-1", 100 + SEEN_KEEP_S + 2) and reopened.count(170) == 0
    reopened.close()


class FakeAdapter:
    name = "fake"
    allow = Response(200, b"")
    deny = Response(403, b"")

    def __init__(self, failures: int = 0, publishers: int = 1) -> None:
        self.failures = failures
        self.publishers = publishers
        self.drops: list[Target] = []

    async def drop(self, target: Target) -> int:
        if self.failures:
            self.failures -= 1
            raise ApiError("GET /drop/publisher: no answer")
        self.drops.append(target)
        return self.publishers

    def publish_target(self, request):
        raise NotImplementedError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def enforcer(tmp_path: Path, adapter: FakeAdapter, clock: Clock) -> Enforcer:
    resolver = ConfigResolver(
        [
            StreamConfig("cam", "rtmp://media/live/cam-key"),
            StreamConfig("hls", "https://cdn/x.m3u8"),
        ]
    )
    return Enforcer(
        adapter,
        resolver,
        DenyList(tmp_path / "state.sqlite3"),
        deny_for_s=600,
        retry_initial_s=0.01,
        retry_max_s=0.02,
        clock=clock,
    )


async def settle(subject: Enforcer) -> None:
    while subject.pending_drops:
        await asyncio.sleep(0.005)


def counts() -> Counter[str]:
    """The enforce counters now, as 'NAME:LABEL' (without prefix and ``_total``).

    The registry is process-global, so tests compare counts before and after.
    """
    found: Counter[str] = Counter()
    for family in metrics.REGISTRY.collect():
        if family.type == "counter" and family.name.startswith("streamguard_enforce_"):
            name = family.name.removeprefix("streamguard_enforce_")
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[":".join([name, *sample.labels.values()])] = sample.value
    return found


def latency(suffix: str) -> float:
    """``count`` or ``sum`` of the kill latency histogram now."""
    return metrics.REGISTRY.get_sample_value(f"streamguard_enforce_kill_latency_seconds_{suffix}")


def test_duplicates_cause_one_drop(tmp_path, caplog):
    adapter, clock = FakeAdapter(), Clock()
    subject = enforcer(tmp_path, adapter, clock)
    before = counts()

    async def scenario() -> None:
        await subject.on_message("cam", event(event_id="e-1"))
        await subject.on_message("cam", event(event_id="e-1"))  # redelivered
        await subject.on_message("cam", event(event_id="e-2"))  # while the drop is in flight
        await settle(subject)
        clock.now += REDROP_AFTER_S - 1
        await subject.on_message("cam", event(event_id="e-3"))  # just after the drop
        await settle(subject)

    with caplog.at_level(logging.DEBUG, "streamguard.enforce"):
        asyncio.run(scenario())
    assert adapter.drops == [CAM]
    assert counts() - before == Counter(
        {"events:kill": 1, "drops:dropped": 1, "events:duplicate": 1, "events:already_enforced": 2}
    )
    repeats = [r for r in caplog.records if "handled before" in r.message or "already" in r.message]
    assert len(repeats) == 3 and {r.levelno for r in repeats} == {logging.DEBUG}


def test_a_kill_that_cannot_be_stored_is_left_unacknowledged(tmp_path, monkeypatch, caplog):
    """Another process holds the state file: the kill raises Unhandled (no PUBACK, the
    broker sends it again), is counted and logged, and is acted on once it comes again."""
    monkeypatch.setattr("streamguard.enforce.denylist.BUSY_TIMEOUT_S", 0.2)
    adapter = FakeAdapter()
    subject = enforcer(tmp_path, adapter, Clock())
    holder = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    before = counts()

    async def scenario() -> None:
        with pytest.raises(Unhandled, match="database is locked"):
            await subject.on_message("cam", event())
        assert counts() - before == Counter({"store_failures": 1})
        holder.execute("ROLLBACK")
        await subject.on_message("cam", event())  # sent again by the broker
        await settle(subject)

    asyncio.run(scenario())
    assert adapter.drops == [CAM]
    assert counts() - before == Counter({"store_failures": 1, "events:kill": 1, "drops:dropped": 1})
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "could not be stored, so it is not acknowledged" in failure.message


def test_an_event_id_is_never_stored_without_its_denial(tmp_path, monkeypatch):
    """The store fails between the two writes: neither stays, so the kill sent again
    is not taken for a copy."""
    adapter = FakeAdapter()
    subject = enforcer(tmp_path, adapter, Clock())

    def disk_error(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    async def scenario() -> None:
        with monkeypatch.context() as patch:
            patch.setattr(subject.denylist, "deny", disk_error)
            with pytest.raises(Unhandled, match="disk I/O error"):
                await subject.on_message("cam", event())
        before = counts()
        await subject.on_message("cam", event())
        await settle(subject)
        assert counts() - before == Counter({"events:kill": 1, "drops:dropped": 1})

    asyncio.run(scenario())
    assert adapter.drops == [CAM]


def test_a_stream_back_after_its_drop_is_dropped_again_with_a_warning(tmp_path, caplog):
    adapter, clock = FakeAdapter(), Clock()
    subject = enforcer(tmp_path, adapter, clock)

    async def scenario() -> None:
        await subject.on_message("cam", event(event_id="e-1"))
        await settle(subject)
        clock.now += REDROP_AFTER_S + 1
        await subject.on_message("cam", event(event_id="e-2"))
        await settle(subject)

    asyncio.run(scenario())
    assert adapter.drops == [CAM, CAM]
    assert "published again although refused" in caplog.text


def test_failed_drops_are_retried_with_back_off(tmp_path, caplog):
    adapter, clock = FakeAdapter(failures=3), Clock()
    subject = enforcer(tmp_path, adapter, clock)
    before = counts()

    async def scenario() -> None:
        await subject.on_message("cam", event())
        await settle(subject)

    asyncio.run(scenario())
    assert adapter.drops == [CAM]
    assert counts() - before == Counter({"events:kill": 1, "drop_failures": 3, "drops:dropped": 1})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "retrying with back-off" in warnings[0].message
    assert "cam-key" not in caplog.text


def test_an_interrupted_drop_is_resumed_after_a_restart(tmp_path):
    clock = Clock()
    first = enforcer(tmp_path, FakeAdapter(failures=1000), clock)

    async def interrupted() -> None:
        await first.on_message("cam", event())
        await asyncio.sleep(0.02)
        await first.close()

    asyncio.run(interrupted())
    first.denylist.close()
    adapter = FakeAdapter()
    second = enforcer(tmp_path, adapter, clock)
    before, observed = counts(), latency("count")

    async def restarted() -> None:
        second.resume()
        await settle(second)
        await second.on_message("cam", event())  # redelivered: already handled

    asyncio.run(restarted())
    assert adapter.drops == [CAM]
    assert counts() - before == Counter({"drops:dropped": 1, "events:duplicate": 1})
    assert latency("count") == observed  # a resumed drop has no event to time


def test_the_hook_decision_follows_the_deny_list(tmp_path, caplog):
    adapter, clock = FakeAdapter(), Clock()
    subject = enforcer(tmp_path, adapter, clock)
    before = counts()
    assert subject.may_publish(CAM)

    async def scenario() -> None:
        await subject.on_message("cam", event())
        await settle(subject)

    asyncio.run(scenario())
    with caplog.at_level(logging.DEBUG, "streamguard.enforce"):
        assert not subject.may_publish(CAM) and not subject.may_publish(CAM)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.DEBUG]
    assert subject.may_publish(Target("live/other-key"))
    clock.now += 601
    assert subject.may_publish(CAM)
    moved = counts() - before
    assert (moved["publishes:refused"], moved["publishes:allowed"]) == (2, 3)


def test_bad_and_unknown_events_are_counted_never_fatal(tmp_path, caplog):
    adapter, clock = FakeAdapter(), Clock()
    subject = enforcer(tmp_path, adapter, clock)
    before = counts()

    async def scenario() -> None:
        await subject.on_message("cam", b"garbage")
        await subject.on_message("cam", event(action="review"))
        await subject.on_message("ghost", event(stream_id="ghost"))
        await subject.on_message("hls", event(stream_id="hls", event_id="e-2"))

    asyncio.run(scenario())
    assert counts() - before == Counter(
        {"events:malformed": 1, "events:ignored": 1, "events:unknown_stream": 2}
    )
    assert adapter.drops == []
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3


@pytest.mark.parametrize(
    ("detected_at", "seconds"), [(DETECTED_AT, 0.5), (1003.0, 0.0)], ids=["0.5s", "run-ahead"]
)
def test_kill_latency_runs_from_detection_to_the_confirmed_drop(tmp_path, detected_at, seconds):
    subject = enforcer(tmp_path, FakeAdapter(), Clock())
    count, total = latency("count"), latency("sum")

    async def scenario() -> None:
        await subject.on_message("cam", event(detected_at=rfc3339(detected_at)))
        await settle(subject)

    asyncio.run(scenario())
    assert latency("count") - count == 1
    assert latency("sum") - total == pytest.approx(seconds)


def test_a_drop_that_finds_no_publisher_is_counted_apart(tmp_path):
    subject = enforcer(tmp_path, FakeAdapter(publishers=0), Clock())
    before = counts()

    async def scenario() -> None:
        await subject.on_message("cam", event())
        await settle(subject)

    asyncio.run(scenario())
    assert counts() - before == Counter({"events:kill": 1, "drops:no_publisher": 1})


def test_a_bug_costs_one_message_and_is_counted(tmp_path, monkeypatch, caplog):
    subject = enforcer(tmp_path, FakeAdapter(), Clock())
    monkeypatch.setattr(subject.resolver, "resolve", lambda stream_id: 1 / 0)
    before = counts()
    asyncio.run(subject.on_message("cam", event()))
    assert counts() - before == Counter({"events:internal_error": 1})
    assert "internal error" in caplog.text


def test_enforce_metrics_are_apart_from_run_metrics_and_exported_from_the_start():
    text = generate_latest(metrics.REGISTRY).decode()
    samples = [line for line in text.splitlines() if line.startswith("streamguard_")]
    assert samples and all(line.startswith("streamguard_enforce_") for line in samples)
    assert f'streamguard_enforce_build_info{{version="{__version__}"}} 1.0' in samples
    for result in metrics.EVENT_RESULTS:
        assert f'streamguard_enforce_events_total{{result="{result}"}}' in text
    assert "process_start_time_seconds" in text
    run_text = generate_latest(DEFAULT_REGISTRY).decode()
    assert "streamguard_build_info" in run_text and "streamguard_enforce_" not in run_text


def test_enforce_table_is_checked(tmp_path):
    parsed = config.table(
        "f: enforce",
        {"adapter": "srs", "api_url": "http://srs:1985", "deny_for_s": 60, "state_file": "s.db"},
        tmp_path,
        EnforceSettings(),
    )
    assert parsed.deny_for_s == 60.0 and parsed.state_file == tmp_path / "s.db"
    settings.check(parsed)
    with pytest.raises(ConfigError, match=r"unknown key.*api_token"):
        config.table("f: enforce", {"api_token": "x"}, tmp_path, EnforceSettings())
    with pytest.raises(ConfigError, match="deny_for_s"):
        config.table("f: enforce", {"deny_for_s": 0}, tmp_path, EnforceSettings())
    with pytest.raises(ConfigError, match=r"enforce\.adapter"):
        settings.check(EnforceSettings(adapter="wowza", api_url="http://x"))
    with pytest.raises(ConfigError, match="hook_secret_file"):
        settings.check(EnforceSettings(adapter="srs", api_url="http://x", listen="0.0.0.0:9311"))
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert config.read_secret(secret, "hook secret") == "s3cret"
    assert config.read_secret(None, "hook secret") == ""
