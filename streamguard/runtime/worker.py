"""One watched stream: a reader thread (open, demux, decode, reconnect) feeding an
asyncio task (hash, match, decide, publish) through a newest-frame-wins queue."""

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from redis.exceptions import RedisError

from streamguard.backoff import backoff_s
from streamguard.blocklist.memory import Blocklist
from streamguard.config import StreamConfig
from streamguard.config.model import IncidentSettings, IngestSettings, Robustness
from streamguard.config.policy import Policy, RuleAction
from streamguard.config.sampling import GuardSettings, Sampling
from streamguard.detect.matcher import ROBUST, FrameMatcher, Match
from streamguard.detect.policy import StreamPolicy
from streamguard.detect.recent import RecentFrame, RecentHashes
from streamguard.errors import (
    SourceEnded,
    SourceError,
    SourceNotLive,
    SourceOpenTimeout,
    SourceRefused,
    SourceUnwatchable,
)
from streamguard.events.schema import (
    Action,
    Escalation,
    Event,
    FrameSeen,
    Unwatchable,
    rfc3339,
)
from streamguard.events.sinks import EventSink
from streamguard.infra.redaction import redact
from streamguard.ingest.budget import CpuBudget
from streamguard.ingest.liveness import Liveness, Seen, look
from streamguard.ingest.sampler import Frame, sample_frames
from streamguard.ingest.source import open_source, video_stream
from streamguard.ingest.stats import SampleStats
from streamguard.ingest.urls import scheme_of
from streamguard.observability import metrics
from streamguard.runtime.broadcast import Agree, Timeline
from streamguard.runtime.handoff import NewestQueue
from streamguard.runtime.state import StreamState, Watch

log = logging.getLogger("streamguard.worker")
T = TypeVar("T")
MAX_RTMP_OPEN_S = 64.0
Fence = Callable[[], Awaitable[bool]]  # whether this process may still publish for the stream
AGREE_WAIT_S = 0.5  # a decision waits this long at most for its broadcast's agreed name
KEPT_TIMELINES = 8  # agreed broadcast names remembered (frames of older ones are decided)
# A publisher can make its stream time run back at every frame: a line per broadcast at
# most this often (the rest at DEBUG, all counted in streamguard_broadcasts_total).
BROADCAST_LOG_EVERY_S = 10.0


class StreamWorker:
    def __init__(
        self,
        config: StreamConfig,
        ingest: IngestSettings,
        blocklist: Blocklist,
        sink: EventSink,
        hash_pool: Executor,
        worker_id: str,
        policy: Policy,
        *,
        robustness: Robustness = ROBUST,
        fence: Fence | None = None,
        agree: Agree | None = None,
        sample: Sampling | None = None,
        guard: GuardSettings | None = None,
        budget: CpuBudget | None = None,
        incidents: IncidentSettings | None = None,
        incident_actions: Mapping[str, RuleAction] | None = None,
    ) -> None:
        """``sample`` is the mode of a stream without one of its own (default: guard);
        ``budget`` the probe CPU its process shares out; ``incidents`` the ring of recent
        hashes kept, ``incident_actions`` each open incident's action by list; ``agree``
        the cluster's agreement on broadcast names (runtime/broadcast.py)."""
        self.config = config
        self.ingest = ingest
        self.sampling = config.sample or sample or Sampling()
        self.guard = guard or GuardSettings()
        self._budget = budget
        self.state = StreamState(config.id, redact(config.url), sample=str(self.sampling))
        ring = incidents or IncidentSettings()
        self.recent = RecentHashes(ring.window_s, ring.max_frames)
        self._matcher = FrameMatcher(blocklist, robustness=robustness, recent=self.recent)
        self._sink = sink
        self._hash_pool = hash_pool
        self._worker_id = worker_id
        self._stop = threading.Event()
        self._stats = SampleStats()
        self._queue: NewestQueue[Frame] | None = None
        self._policy = StreamPolicy(policy, incident_actions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fence = fence
        self._agree = agree
        self._timeline = Timeline()  # reader thread
        self._agreements: dict[int, Future[int]] = {}  # local start -> agreed name
        self._deciding_broadcast_ms = 0  # the broadcast of the last frame decided on
        self._broadcast_logged_at = -math.inf  # monotonic time of the last broadcast line
        self._kill: Event | None = None  # the kill that ended the watch
        self._retired = asyncio.Event()  # stop() came: the watch after a kill ends too
        self._report = True  # publish state changes to the sink (status topic)
        self._unwatchable_since: float | None = None  # reader thread: no sample since
        self._too_large_before = 0  # frames left out for their size by earlier connections
        self._open_timeouts = 0  # RTMP opens that timed out: each doubles the patience
        metrics.STREAMS.labels(str(self.state.state)).inc()

    def snapshot(self) -> dict[str, Any]:
        """State for /streams, with the reader's live counters."""
        stats = self._stats
        self.state.lag_s = round(stats.lag_s, 3)
        self.state.backlog_s = round(stats.backlog_s, 3)
        self.state.live_edge_skips = stats.live_edge_skips
        self.state.decode_errors = stats.decode_errors
        self.state.frames_too_large = self._too_large_before + stats.too_large
        interval_s = stats.picker.keyframe_interval_s
        self.state.keyframe_interval_s = None if interval_s is None else round(interval_s, 3)
        self.state.beyond_keyframes = self.decoding_beyond_keyframes()
        self.state.probes = stats.picker.probes
        self.state.samples_skipped = dict(stats.picker.skipped)
        if self._queue is not None:
            self.state.frames_dropped = self._queue.dropped
        return self.state.snapshot()

    def decoding_beyond_keyframes(self) -> bool:
        """Whether non-key frames are being decoded now (a late keyframe, a probe)."""
        watching = self.state.state is Watch.WATCHING
        return watching and self._stats.picker.decoding_beyond_keyframes

    def lag_s(self) -> float:
        """How far reading is behind the live edge (0 unless watching)."""
        return self._stats.lag_s if self.state.state is Watch.WATCHING else 0.0

    def keyframe_age_s(self, now: float) -> float:
        """Seconds without a sampled frame since the stream was last watched (0 unless watching)."""
        if self.state.state is not Watch.WATCHING:
            return 0.0
        return now - max(self.state.since, self.state.last_keyframe_at or 0.0)

    def stop(self, *, report: bool = True) -> None:
        """Ask the reader to stop; it notices within one read timeout at most.

        Without ``report`` the final state is not published (another process now
        watches the stream and reports it).
        """
        self._report = report
        self._stop.set()
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._retired.set)
        if self.state.state is not Watch.KILLED:
            self._enter(Watch.STOPPED)

    def retire(self, *, clear_status: bool) -> None:
        """Stop for good: the stream is no longer this process's (handover or removal)."""
        self.stop(report=False)
        metrics.STREAMS.labels(str(self.state.state)).dec()
        if clear_status:
            self._sink.stream_status(self.config.id, None)
        else:
            self._sink.release(self.config.id)

    async def run(self) -> None:
        """Watch until cancelled or killed: start the reader, then decide on each frame."""
        loop = self._loop = asyncio.get_running_loop()
        self._queue = NewestQueue(loop, self.ingest.queue_size, self._hash_backlog)
        reader = threading.Thread(
            target=self._read_forever, args=(self._queue,), name=f"read-{self.config.id}"
        )
        reader.daemon = True  # a read blocked in FFmpeg must not hold up shutdown
        reader.start()
        self._publish_status()
        try:
            while not self._stop.is_set():
                frame = await self._queue.get()
                if frame is None:
                    continue  # woken to stop
                try:
                    matches = await loop.run_in_executor(self._hash_pool, self._matcher, frame)
                    await self._decide(frame, matches)
                except Exception:  # a bug must cost this frame, not the stream
                    self.state.internal_errors += 1
                    metrics.INTERNAL_ERRORS.inc()
                    log.exception(
                        "stream %s: frame at %.3f s not decided", self.config.id, frame.pts_s
                    )
        finally:
            self._stop.set()
        if self._kill is not None and self.state.state is Watch.KILLED:
            await self._watch_after_kill(self._kill)

    def _hash_backlog(self) -> None:
        """A sampled frame dropped unhashed: hashing fell behind (the newest is kept)."""
        self._stats.picker.skipped["hash_backlog"] += 1
        metrics.FRAMES_DROPPED.inc()
        metrics.SAMPLES_SKIPPED.labels("hash_backlog").inc()

    async def _decide(self, frame: Frame, matches: list[Match]) -> None:
        """Apply the policy to this frame; publish the decision it brings, if any."""
        if frame.broadcast_ms != self._deciding_broadcast_ms:
            self._deciding_broadcast_ms = frame.broadcast_ms
            self._policy.new_broadcast()
        decision = self._policy.observe(matches, frame.received_at, frame.pts_s)
        if decision is None:
            return
        best = decision.match
        if not await self._may_publish(decision.action):
            return
        event = best.event(
            decision.action,
            stream_url=self.state.url,
            worker_id=self._worker_id,
            confirmations=decision.confirmations,
            video=None if decision.video is None else decision.video.summary(),
            broadcast_ms=await self._broadcast(best.frame.broadcast_ms),
        )
        metrics.DECISION_LATENCY.observe(best.latency_s)
        await self._publish(event)
        if decision.video is not None:
            metrics.VIDEO_DECISIONS.labels(decision.action).inc()
            video = decision.video
            log.warning(
                "stream %s: known video %s at %+.1f s: %d samples aligned over %.1f s "
                "(coverage %.2f)",
                self.config.id,
                video.video,
                video.offset_s,
                video.frames_matched,
                video.window_s,
                video.coverage,
            )
        log.warning(
            "stream %s: %s: matched %s/%s (%s, %s distance %d/%d, %d frames) at %.3f s, "
            "%d ms after arrival (event %s)",
            self.config.id,
            decision.action,
            best.hit.entry.list,
            best.hit.entry.id,
            best.hit.entry.category,
            best.hash.algo,
            best.hit.distance,
            best.hit.threshold,
            decision.confirmations,
            best.frame.pts_s,
            round(best.latency_s * 1000),
            event.event_id,
        )
        if decision.action is Action.KILL and not self._policy.policy.keep_watching_after_kill:
            self._killed(event, f"matched a {best.hit.entry.category} entry")

    async def kill_for_incident(self, incident_id: str, last: RecentFrame) -> bool:
        """Kill this stream: an incident was opened on it (``last``: its newest kept
        frame, the event's). Through the sink as any decision; False if fenced."""
        if not await self._may_publish(Action.KILL):
            return False
        event = Event(
            action=Action.KILL,
            stream_id=self.config.id,
            stream_url=self.state.url,
            worker_id=self._worker_id,
            frame=FrameSeen(last.pts_s, last.received_at, last.width, last.height),
            detected_at=time.time(),
            incident=incident_id,
            broadcast_ms=await self._broadcast(last.broadcast_ms),
        )
        await self._publish(event)
        log.warning(
            "stream %s: kill: incident %s opened on it (event %s)",
            self.config.id,
            incident_id,
            event.event_id,
        )
        self._killed(event, f"incident {incident_id}")
        self.recent.clear()
        if self._queue is not None:
            self._queue.wake()  # run() waits for a frame the stopped reader will never send
        return True

    def _killed(self, kill: Event, why: str) -> None:
        """The media server ends the broadcast: nothing more to decide; from now on the
        stream is only looked at to see whether it still publishes (_watch_after_kill)."""
        self._kill = kill
        self._stop.set()
        self._enter(Watch.KILLED, why)

    async def _watch_after_kill(self, kill: Event) -> None:
        """Every ``still_live_after_s``, look whether the killed stream still publishes
        (no decoding: ingest/liveness.py); while it does, nobody honoured the kill (no
        enforcer, a failed API call, a consumer that was down), and the kill is repeated
        as an escalation with an id of its own (reason still_live)."""
        every_s = self._policy.policy.still_live_after_s
        repeated = 0
        while every_s and not await self._retired_within(every_s):
            seen = await _in_own_thread(self._look, f"look-{self.config.id}")
            metrics.STILL_LIVE_CHECKS.labels(seen.liveness).inc()
            # nginx-rtmp starts a player at a keyframe: a publisher that sends them far
            # apart after its kill must not time every look out; each waits longer.
            self._open_timeouts += seen.liveness is Liveness.TIMED_OUT
            if seen.liveness is not Liveness.LIVE:
                log.debug(
                    "stream %s: after its kill: %s (%s)", self.config.id, seen.liveness, seen.detail
                )
                continue
            if self._retired.is_set() or not await self._may_publish(Action.KILL):
                return
            repeated += 1
            escalation = dataclasses.replace(
                kill,
                frame=FrameSeen(seen.pts_s, seen.received_at),
                detected_at=time.time(),
                escalation=Escalation(kill.event_id, repeated, kill.detected_at),
            )
            metrics.ESCALATIONS.inc()
            self.state.escalations += 1
            await self._sink.publish(escalation)
            log.warning(
                "stream %s: still live %.0f s after its kill (event %s): kill repeated, "
                "number %d (event %s)",
                self.config.id,
                escalation.detected_at - kill.detected_at,
                kill.event_id,
                repeated,
                escalation.event_id,
            )

    def _look(self) -> Seen:
        ingest = self.ingest
        return look(
            self.config.url,
            allowed_schemes=frozenset(ingest.allowed_schemes),
            open_timeout_s=self._patience(ingest.open_timeout_s),
            read_timeout_s=self._patience(ingest.read_timeout_s),
            hls_hold_reloads=ingest.hls_hold_reloads,
        )

    async def _retired_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retired.wait(), seconds)
        return self._retired.is_set()

    async def _publish(self, event: Event) -> None:
        """Count a decided event and hand it to the sink (outbox, then the broker)."""
        metrics.DECISIONS.labels(event.action).inc()
        await self._sink.publish(event)
        self.state.detections += 1

    def _new_broadcast(self) -> None:
        """Called from the reader thread: a broadcast timeline began (``_timeline``).
        Its name is agreed on at once, so that a decision seldom waits for it."""
        timeline = self._timeline
        start_ms, previous_ms = timeline.start_ms or 0, timeline.previous_ms
        now, level = time.monotonic(), logging.DEBUG
        if now - self._broadcast_logged_at >= BROADCAST_LOG_EVERY_S:
            self._broadcast_logged_at, level = now, logging.INFO
        log.log(
            level,
            "stream %s: broadcast of %s (%s)",
            self.config.id,
            rfc3339(start_ms / 1000),
            timeline.why,
        )
        if self._agree is None:
            metrics.BROADCASTS.labels("local").inc()
        elif self._loop is not None:
            agree = self._agree(start_ms, previous_ms)
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._agreements[start_ms] = asyncio.run_coroutine_threadsafe(
                    self._agreed(start_ms, agree), self._loop
                )
                while len(self._agreements) > KEPT_TIMELINES:
                    del self._agreements[next(iter(self._agreements))]

    async def _agreed(self, start_ms: int, agree: Awaitable[int]) -> int:
        """The cluster's name for the timeline this worker saw begin at ``start_ms``; its
        own if Redis does not answer (two workers may then name it differently: a frame
        both decide is delivered twice, never taken for a copy of another decision)."""
        try:
            agreed = await asyncio.wait_for(agree, AGREE_WAIT_S * 4)
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.BROADCASTS.labels("failed").inc()
            log.warning(
                "stream %s: broadcast %d not agreed with the cluster (%s): named as seen here",
                self.config.id,
                start_ms,
                exc.__class__.__name__,
            )
            return start_ms
        metrics.BROADCASTS.labels("recorded" if agreed == start_ms else "adopted").inc()
        return agreed

    async def _broadcast(self, start_ms: int) -> int:
        """The agreed name of the broadcast whose timeline began at ``start_ms`` here."""
        agreement = self._agreements.get(start_ms)
        if agreement is None:
            return start_ms
        try:
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(agreement)), AGREE_WAIT_S
            )
        except TimeoutError:
            return start_ms

    async def _may_publish(self, action: Action) -> bool:
        """False if another worker has taken this stream over (its lease is gone)."""
        if self._fence is None or await self._fence():
            return True
        metrics.CLUSTER_FENCED.inc()
        log.warning(
            "stream %s: %s not published: its lease was taken over by another worker",
            self.config.id,
            action,
        )
        return False

    async def _report_unwatchable(self, exc: SourceUnwatchable, at: float) -> None:
        """Through the policy (one decision per incident), outbox and topics, as a match is."""
        action = self._policy.unwatchable(at)
        if action is None or not await self._may_publish(action):
            return
        event = Event(
            action=action,
            stream_id=self.config.id,
            stream_url=self.state.url,
            worker_id=self._worker_id,
            frame=FrameSeen(self._stats.end_s or 0.0, at),  # the last packet's
            detected_at=at,
            unwatchable=Unwatchable(exc.cause, str(exc)),
            broadcast_ms=await self._broadcast(self._timeline.start_ms or 0),
        )
        await self._publish(event)
        log.warning(
            "stream %s: %s: unwatchable (%s): %s (event %s)",
            self.config.id,
            action,
            exc.cause,
            exc,
            event.event_id,
        )

    def _publish_status(self) -> None:
        """Hand the current state to the sink (retained status message), on the event loop."""
        if self._loop is None or not self._report:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody left to tell
            self._loop.call_soon_threadsafe(self._send_status, self.snapshot())

    def _send_status(self, snapshot: dict[str, Any]) -> None:
        # A state from the reader thread can arrive after retire(): it must not bring back
        # the status of a stream that was removed or handed over.
        if self._report:
            self._sink.stream_status(self.config.id, snapshot)

    # -- reader thread ------------------------------------------------------------------

    def _enter(self, state: Watch, error: str = "") -> None:
        """Called from the reader thread and the event loop. Once stopped, the reader
        thread (a daemon, perhaps still opening the source) changes the state no more."""
        if self._stop.is_set() and state not in (Watch.STOPPED, Watch.KILLED):
            return
        before = self.state.state
        if self.state.enter(state, error):
            if state is not before:
                metrics.STREAMS.labels(str(before)).dec()
                metrics.STREAMS.labels(str(state)).inc()
            detail = f": {error}" if error else ""
            level = logging.WARNING if state in (Watch.RECONNECTING, Watch.FAILED) else logging.INFO
            log.log(level, "stream %s (%s): %s%s", self.config.id, self.state.url, state, detail)
            self._publish_status()

    def _read_forever(self, queue: NewestQueue[Frame]) -> None:
        failures = 0
        while not self._stop.is_set():
            error, reason, not_live = "", "ended", False
            try:
                self._watch_once(queue)
            except SourceEnded:
                pass  # the server closed the stream: an end, as a clean end of file is
            except SourceRefused as exc:
                self._enter(Watch.FAILED, str(exc))
                return
            except SourceUnwatchable as exc:
                # Chosen by the publisher, who may change its mind: reported, and reopened
                # at once (a new codec or picture size needs a new probe).
                self._unwatchable(exc)
                error, reason = str(exc), exc.reason
                failures = 0
            except SourceError as exc:
                error, reason = str(exc), exc.reason
                not_live = isinstance(exc, SourceNotLive)
                self._open_timeouts += isinstance(exc, SourceOpenTimeout)
            except Exception as exc:  # a bug must not silently end the watch: retry
                self.state.internal_errors += 1
                metrics.INTERNAL_ERRORS.inc()
                log.exception("stream %s: reader failed", self.config.id)
                error, reason = f"internal error ({exc.__class__.__name__})", "internal_error"
            if self._stop.is_set():
                return
            if not error:
                failures = 0
                self._enter(Watch.ENDED)
            else:
                failures += 1
                # A stream that was watched has ended once its server says nothing is
                # published there, however its last read failed: in keyframe mode, a
                # publisher leaving just before a keyframe looks like a stall
                # (sampler._demux). Until it is watched again, it stays "ended".
                ended = self.state.state is Watch.ENDED or (not_live and self.state.connects > 0)
                self._enter(Watch.ENDED if ended else Watch.RECONNECTING, error)
            ingest = self.ingest
            delay = backoff_s(failures, ingest.reconnect_initial_s, ingest.reconnect_max_s)
            if self._stop.wait(delay):
                return
            self.state.reconnects += 1
            metrics.RECONNECTS.labels(reason).inc()

    def _unwatchable(self, exc: SourceUnwatchable) -> None:
        """Called from the reader thread: once the stream has been unwatchable for
        ``unwatchable_after_s`` (over reconnects too), hand the report to the event loop."""
        now = time.time()
        if self._unwatchable_since is None:
            self._unwatchable_since = now - exc.after_s
        unwatchable_s = max(exc.after_s, now - self._unwatchable_since)
        if unwatchable_s < self.guard.unwatchable_after_s:
            return
        self.state.unwatchable += 1
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._report_unwatchable(exc, now), self._loop)

    def _patience(self, timeout_s: float) -> float:
        """RTMP servers start a player at a keyframe (nginx-rtmp's wait_key): with a GOP
        longer than the open or read timeout every open would time out, and the stream
        would never be watched. After each timed-out open of an RTMP stream, its opens and
        reads wait twice as long, up to MAX_RTMP_OPEN_S: a dead server costs this
        stream's retries, and its stalls are noticed later; nothing else."""
        if not scheme_of(self.config.url).startswith("rtmp"):
            return timeout_s
        doublings = min(self._open_timeouts, 64)  # 2.0**1024 overflows; 2**64 reaches the cap
        return min(timeout_s * 2.0**doublings, max(timeout_s, MAX_RTMP_OPEN_S))

    def _watch_once(self, queue: NewestQueue[Frame]) -> None:
        """Read the stream until it ends (returns) or fails (raises SourceError)."""
        ingest = self.ingest
        read_timeout_s = self._patience(ingest.read_timeout_s)
        with open_source(
            self.config.url,
            allowed_schemes=frozenset(ingest.allowed_schemes),
            open_timeout_s=self._patience(ingest.open_timeout_s),
            read_timeout_s=read_timeout_s,
            hls_hold_reloads=ingest.hls_hold_reloads,
        ) as container:
            stream = video_stream(container, self.state.url)
            self._too_large_before += self._stats.too_large
            self._stats = stats = SampleStats()
            self._timeline.reconnected()
            self.state.connects += 1
            self._enter(Watch.WATCHING)
            for frame in sample_frames(
                container,
                stream,
                self.config.id,
                self.sampling,
                guard=self.guard,
                budget=self._budget,
                stats=stats,
                max_lag_s=ingest.max_lag_s,
                demuxer_skips_nonkey=True,
                read_timeout_s=read_timeout_s,
            ):
                if self._stop.is_set():
                    return
                self.state.frames_sampled += 1
                self._unwatchable_since = None
                metrics.FRAMES_SAMPLED.inc()
                self.state.last_keyframe_at = frame.received_at
                self.state.last_pts_s = frame.pts_s
                if self._timeline.place(frame.pts_s, frame.received_at):
                    self._new_broadcast()
                queue.put_threadsafe(
                    dataclasses.replace(frame, broadcast_ms=self._timeline.start_ms or 0)
                )


def _in_own_thread(call: Callable[[], T], name: str) -> Awaitable[T]:
    """``call()`` on a daemon thread of its own: a look at a stream can block for its
    open and read timeouts, and must hold up neither the loop nor a shared executor."""
    done: Future[T] = Future()

    def run() -> None:
        try:
            done.set_result(call())
        except BaseException as exc:  # handed to the awaiting task
            done.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return asyncio.wrap_future(done)
