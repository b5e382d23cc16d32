"""The stage every fault is injected on: real Redis, mosquitto, nginx-rtmp, publishers that
reconnect like encoders do, `streamguard run` with the Redis blocklist and MQTT, and a
platform subscriber with a persistent session that deduplicates kill events by
``event_id``, as docs/events.md tells platforms to: every kill decided must reach it under
an id of its own."""

import re
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from streamguard.ingest.replay import publish

from ..conftest import SAMPLES
from ..integration.test_run import EVERY_LOOP, FAST_RETRIES
from ..support.mosquitto import Mosquitto
from ..support.nginx import RestartableNginxRtmp
from ..support.redis import RedisServer, import_blocklist
from ..support.service import DECISION, Service
from ..support.subscriber import Subscriber

CLIPS = SAMPLES / "clips"
# Two flagged broadcasts (their flagged picture at 4 s of every 10 s loop) and a clean one.
FLAGGED = {"flagged-a": CLIPS / "flagged_720p.mp4", "flagged-b": CLIPS / "flagged_360p.flv"}
CLEAN = {"clean": CLIPS / "clean_720p.mp4"}
LOOP_S = 10.0
FLAGGED_AT_S = 4.0  # stream time of the flagged keyframe in every loop
PLATFORM = "platform-faults"  # the subscriber's client id: a persistent session
PROBE = "streamguard/v1/kill/probe"
BLOCKLIST = str(SAMPLES / "blocklist.csv")


def received_at(event: dict[str, Any]) -> float:
    """When the deciding frame's packet was read, as a Unix time."""
    return datetime.fromisoformat(event["frame"]["received_at"]).timestamp()


def sleep_until(moment: float) -> None:
    """Faults are timed against the streams' clock (when their flagged frame comes)."""
    time.sleep(max(0.0, moment - time.time()))


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)


class Encoder:
    """A publisher as OBS behaves: it sends the clip in a loop, in real time, and
    reconnects half a second after the media server dropped it."""

    def __init__(self, clip: Path, url: str) -> None:
        self.clip, self.url = clip, url
        self.sessions = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._session = threading.Event()  # set: the current session ends
        self._thread = threading.Thread(target=self._run, name=f"encoder-{clip.stem}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sessions += 1
            self._session = session = threading.Event()
            if self._stop.is_set():  # close() came before this session's event existed
                return
            try:
                errors = publish(self.clip, [self.url], loop=True, stop=session)
            except Exception as exc:  # whatever happened, an encoder tries again
                errors = [exc]
            self.errors += [str(error) for error in errors]
            self._stop.wait(0.5)

    def restart(self) -> None:
        """End this session: the encoder publishes again, from its clip's start, 0.5 s
        after the connection closed (the operator's "stop" and "start streaming")."""
        self._session.set()

    def close(self) -> None:
        self._stop.set()
        self._session.set()
        self._thread.join(15)
        assert not self._thread.is_alive(), f"the encoder of {self.clip.name} did not stop"


@dataclass
class Scene:
    """Everything of one fault scenario; ``with`` starts it and waits for a first kill
    delivered on every flagged stream (the baseline)."""

    tmp_path: Path
    redis: RedisServer
    mosquitto: Mosquitto
    nginx: RestartableNginxRtmp
    processes: int = 1
    state_dir: Path | None = None
    extra_streams: dict[str, str] = field(default_factory=dict)  # id -> URL, not published
    worker_timeout_s: float = 3.0
    stderr: int | None = None  # the first service's log, instead of its file (Service)
    earlier_logs: list[str] = field(default_factory=list)  # of services started before
    service: Service | None = None
    subscriber: Subscriber | None = None
    encoders: dict[str, Encoder] = field(default_factory=dict)
    exit_code: int | None = None  # the service's, once stopped

    @property
    def flagged(self) -> list[str]:
        return list(FLAGGED)

    def __enter__(self) -> "Scene":
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        import_blocklist(self.redis, BLOCKLIST)
        self.subscriber = Subscriber(self.mosquitto.port, "streamguard/v1/kill/+", PLATFORM)
        wait_until(self._probe, 10, "the platform subscriber subscribed")
        for name, clip in {**FLAGGED, **CLEAN}.items():
            self.encoders[name] = Encoder(clip, self.nginx.rtmp_url(name))
        wait_until(
            lambda: set(self.encoders) <= self.nginx.published(), 10, "every stream published"
        )
        self.service = Service(
            ["--config", str(self.config())], self.tmp_path / "run.log", stderr=self.stderr
        )
        # 40 s: with the load at 30 on 2 cores, a worker process's imports alone took 9-19 s.
        self.service.wait_for(lambda: self.service.get("/readyz")["ready"], 40, "ready")
        self.service.wait_for(
            lambda: all(self.delivered_for(name) for name in FLAGGED),
            LOOP_S + 15,
            "a first kill delivered for every flagged stream",
        )
        self.service.wait_for(
            lambda: all(self.streams()[name]["state"] == "watching" for name in self.encoders),
            10,
            "every published stream watched",
        )

    def start_again(self) -> None:
        """Start `run` again on the same configuration and state, as its service manager
        does once it has exited; what the earlier one logged still counts."""
        self.earlier_logs.append(self.service.log())
        self.service.stop()
        log_path = self.tmp_path / f"run-{len(self.earlier_logs) + 1}.log"
        self.service = Service(["--config", str(self.config())], log_path)
        self.service.wait_for(lambda: self.service.get("/readyz")["ready"], 30, "ready again")

    def _probe(self) -> bool:
        """Whether the subscriber gets what is published (it has subscribed)."""
        return self.subscriber.probe(PROBE)

    def config(self) -> Path:
        state_dir = self.state_dir or self.tmp_path / "state"
        urls = {name: self.nginx.rtmp_url(name) for name in {**FLAGGED, **CLEAN}}
        urls.update(self.extra_streams)
        tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{url}"\n' for i, url in urls.items())
        path = self.tmp_path / "streamguard.toml"
        path.write_text(
            f'processes = {self.processes}\nstate_dir = "{state_dir}"\nhash_threads = 2\n'
            f"worker_timeout_s = {self.worker_timeout_s:g}\n"
            f'[redis]\nurl = "{self.redis.url}"\ntimeout_s = 1\n'
            f'[mqtt]\nurl = "{self.mosquitto.url()}"\ntimeout_s = 2\nkeepalive_s = 5\n'
            f"{FAST_RETRIES}{EVERY_LOOP}{tables}"
        )
        return path

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.service is not None and self.service.process.poll() is None:
                self.exit_code = self.service.stop()
        finally:
            for encoder in self.encoders.values():
                encoder.close()
            if self.subscriber is not None:
                self.subscriber.close()

    # -- what the platform and the operator see ------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        """Every kill event the platform received, duplicates included."""
        return [m.json() for m in self.subscriber.messages if m.topic != PROBE]

    def delivered(self) -> set[str]:
        """The event ids the platform received."""
        return {event["event_id"] for event in self.messages()}

    def delivered_for(self, stream_id: str, after: float = 0.0) -> list[dict[str, Any]]:
        """Kills received for ``stream_id`` whose deciding frame was read after ``after``."""
        return [
            event
            for event in self.messages()
            if event["stream_id"] == stream_id and received_at(event) > after
        ]

    def decisions(self) -> list[tuple[str, str]]:
        """Kills the service decided and committed to its outbox, per its log, in order:
        (stream, event_id)."""
        log = "".join(self.earlier_logs) + self.service.log()
        return [(m["stream"], m["event_id"]) for m in DECISION.finditer(log)]

    def decided(self) -> set[str]:
        return {event_id for _, event_id in self.decisions()}

    def lost(self) -> set[str]:
        """Ids of kills decided and never delivered."""
        return self.decided() - self.delivered()

    def lost_decisions(self) -> int:
        """Kills decided that a platform deduplicating on ``event_id`` did not act on:
        counted by decision, so a kill that got the id of an earlier one (the platform
        drops it as a copy) is lost as surely as one never delivered."""
        return len(self.decisions()) - len(self.decided() & self.delivered())

    def wait_detected_after(self, moment: float, streams: list[str], timeout_s: float) -> float:
        """Wait for a kill delivered for each of ``streams`` on a frame read after
        ``moment``; return when the last of them had been read (seconds after ``moment``)."""
        self.service.wait_for(
            lambda: all(self.delivered_for(name, moment) for name in streams),
            timeout_s,
            f"a kill delivered for {', '.join(streams)} on a frame shown after the fault",
        )
        return max(min(received_at(e) for e in self.delivered_for(n, moment)) for n in streams) - (
            moment
        )

    def wait_none_lost(self, timeout_s: float = 20) -> int:
        """Wait until every decided kill has reached the platform; the number of decisions
        it has not acted on (``lost_decisions``)."""
        with_margin = time.monotonic() + timeout_s
        while self.lost() and time.monotonic() < with_margin:
            time.sleep(0.2)
        return self.lost_decisions()

    def logged(self, pattern: str, *, last: bool = False) -> str:
        """The group of the first (or last) log line matching ``pattern``; fails if none."""
        found = re.findall(pattern, self.service.log())
        assert found, f"no log line matches {pattern!r}"
        return found[-1 if last else 0]

    def metrics(self) -> dict[str, float]:
        return self.service.metrics()

    def metric(self, sample: str) -> float:
        return self.metrics().get(sample, 0.0)

    def streams(self) -> dict[str, dict[str, Any]]:
        return self.service.streams()

    def next_flagged_at(self, stream_id: str) -> float:
        """When the next flagged keyframe of ``stream_id`` will be read (Unix time): the
        clips show their flagged picture at 4 s of every 10 s loop."""
        state = self.service.wait_for(
            lambda: (s := self.streams()[stream_id])["last_pts_s"] is not None and s,
            5,
            f"a frame sampled on {stream_id}",
        )
        wait_s = (FLAGGED_AT_S - state["last_pts_s"]) % LOOP_S
        at = state["last_keyframe_at"] + wait_s
        return at + LOOP_S if at < time.time() else at

    def before_flagged(self, lead_s: float, streams: list[str] | None = None) -> None:
        """Return ``lead_s`` before the next flagged frame of ``streams`` (default: the
        flagged ones), at least that long before, so a fault injected now is in place
        when it comes."""
        at = min(self.next_flagged_at(name) for name in streams or self.flagged)
        if at - lead_s < time.time() + 0.2:
            at += LOOP_S
        sleep_until(at - lead_s)

    def disturbed(self, names: list[str], since: dict[str, dict[str, Any]]) -> list[str]:
        """How these streams were disturbed since ``since`` (a /streams snapshot): each
        must still be watched, without a reconnect, with frames sampled meanwhile."""
        now, problems = self.streams(), []
        for name in names:
            before, after = since[name], now[name]
            if after["state"] != "watching" or after["connects"] != before["connects"]:
                problems.append(f"{name}: {before} -> {after}")
            elif after["frames_sampled"] <= before["frames_sampled"]:
                problems.append(f"{name}: no frame sampled since: {after}")
        return problems

    def conclude(self, record: Any) -> None:
        """The checks every fault ends with: the service is up, and every kill it decided
        reached the platform. Written to ``record`` before they are asserted."""
        record.events_lost = self.wait_none_lost()
        decisions = self.decisions()
        record.events_decided = len(decisions)
        record.events_delivered = len(self.messages())
        # Copies sent again (at least once delivery), and decisions that got the id of an
        # earlier one (a broadcast restarted within the same 10 s step: docs/events.md).
        # Copies sent again (at least once delivery), which a platform drops.
        record.duplicates = max(record.events_delivered - len(self.decided()), 0)
        # Decisions that got the id of an earlier one: a platform would drop them too.
        record.reused_ids = len(decisions) - len(self.decided())
        assert self.alive() and self.service.process.poll() is None, "the service went down"
        assert record.reused_ids == 0, f"kills dropped as copies of earlier ones: {decisions}"
        assert record.events_lost == 0, f"kills never delivered: {sorted(self.lost())}"
        assert self.metric("streamguard_internal_errors_total") == 0, self.service.log()

    def alive(self) -> bool:
        try:
            return self.service.get("/healthz") == {"alive": True}
        except (OSError, urllib.error.URLError):
            return False
