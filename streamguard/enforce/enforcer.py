"""What a kill event does: refuse the stream key, then drop its publisher, once.

The key is refused first, so a publisher that reconnects while the drop is in flight
is already turned away by the publish hook, and both are stored before the event
is acknowledged to the broker (a store that fails leaves it unacknowledged, to come
again). Each drop is retried with jittered back-off until the media server confirms
it; a drop a restart interrupted is resumed.
Duplicates (the same event again, or another event for a stream already being ended)
cause no second drop. What happens is counted in streamguard.enforce.metrics.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from streamguard.backoff import backoff_s
from streamguard.enforce import metrics
from streamguard.enforce.adapters import Adapter
from streamguard.enforce.api import ApiError
from streamguard.enforce.denylist import Denial, DenyList, StateError
from streamguard.enforce.events import InvalidEvent, KillOrder, parse_kill
from streamguard.enforce.targets import Resolver, Target
from streamguard.events.subscriber import Unhandled

log = logging.getLogger("streamguard.enforce")

# A kill for a key dropped longer ago than this means its publisher got back in: the
# media server does not call the publish hook. It is dropped again, with a warning.
REDROP_AFTER_S = 10.0


class Enforcer:
    def __init__(
        self,
        adapter: Adapter,
        resolver: Resolver,
        denylist: DenyList,
        *,
        deny_for_s: float,
        retry_initial_s: float,
        retry_max_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.adapter = adapter
        self.resolver = resolver
        self.denylist = denylist
        self.deny_for_s = deny_for_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self._drops: dict[str, asyncio.Task[None]] = {}  # by target digest
        self._refused: set[str] = set()  # digests whose first refusal was logged

    @property
    def pending_drops(self) -> int:
        return len(self._drops)

    async def on_message(self, topic_stream_id: str, payload: bytes) -> None:
        """Handle one message from ``PREFIX/v1/kill/+``, the kill stored before it returns.

        Raises Unhandled when the deny list cannot be written, so that the message is not
        acknowledged and comes again; nothing else: a bug costs this message, counted,
        never the subscription (a message that always failed would come back forever).
        """
        try:
            if self.resolver.resolve(topic_stream_id) is None:
                await self.resolver.refresh()  # registered since the last look, perhaps
            result = self._handle(topic_stream_id, payload)
        except StateError as exc:
            metrics.STORE_FAILURES.inc()
            log.error(
                "kill topic of stream '%s': an event could not be stored, so it is not "
                "acknowledged; the broker sends it again after a reconnect (%s)",
                topic_stream_id,
                exc,
            )
            raise Unhandled(str(exc)) from None
        except Exception:
            result = "internal_error"
            log.exception("kill event for stream '%s': internal error", topic_stream_id)
        metrics.EVENTS.labels(result).inc()

    def _handle(self, topic_stream_id: str, payload: bytes) -> str:
        """Act on one message; what was done, a ``result`` of metrics.EVENTS."""
        try:
            order = parse_kill(payload, topic_stream_id)
        except InvalidEvent as exc:
            log.warning(
                "kill topic of stream '%s': ignored a malformed event: %s", topic_stream_id, exc
            )
            return "malformed"
        if order is None:
            log.debug("stream '%s': ignored a review event on the kill topic", topic_stream_id)
            return "ignored"
        now = self.clock()
        target = self.resolver.resolve(order.stream_id)
        with self.denylist.transaction():  # its id and its denial, or neither
            first = self.denylist.first_sight(order.event_id, now)
            previous = None
            if first and target is not None:
                previous = self.denylist.deny(target, order.stream_id, now, now + self.deny_for_s)
        if not first:
            log.debug("event %s: handled before; ignored", order.event_id)
            return "duplicate"
        if target is None:
            log.warning(
                "event %s: stream '%s' is not a configured RTMP stream; nothing to end",
                order.event_id,
                order.stream_id,
            )
            return "unknown_stream"
        return self._enforce(order, target, now, previous)

    def _enforce(
        self, order: KillOrder, target: Target, now: float, previous: Denial | None
    ) -> str:
        """Drop the publisher of ``target``, now refused, unless that is under way."""
        self._refused.discard(target.digest)
        dropped_at = previous.dropped_at if previous else None
        if target.digest in self._drops or (
            dropped_at is not None and now - dropped_at < REDROP_AFTER_S
        ):
            log.debug(
                "event %s: stream '%s' is already being ended", order.event_id, order.stream_id
            )
            return "already_enforced"
        if dropped_at is not None:
            log.warning(
                "event %s: stream '%s' (%s) published again although refused: is the %s "
                "publish hook configured? Dropping it again",
                order.event_id,
                order.stream_id,
                target.shown,
                self.adapter.name,
            )
        else:
            log.info(
                "event %s: ending stream '%s' (%s) on %s; its key is refused for %.0f s",
                order.event_id,
                order.stream_id,
                target.shown,
                self.adapter.name,
                self.deny_for_s,
            )
        self._start_drop(target, order.stream_id, order.detected_at)
        return "kill"

    def may_publish(self, target: Target) -> bool:
        """The publish hook's answer for ``target``."""
        denial = self.denylist.denial(target, self.clock())
        if denial is None:
            metrics.PUBLISHES.labels("allowed").inc()
            return True
        metrics.PUBLISHES.labels("refused").inc()
        first = target.digest not in self._refused
        self._refused.add(target.digest)
        log.log(
            logging.INFO if first else logging.DEBUG,
            "refused a publish of %s: stream '%s' was killed (refused for %.0f s more)",
            target.shown,
            denial.stream_id,
            denial.until - self.clock(),
        )
        return False

    def resume(self) -> None:
        """Restart the drops a previous run did not finish."""
        for denial in self.denylist.undropped(self.clock()):
            target = self.resolver.resolve(denial.stream_id)
            if target is None or target.digest != denial.digest:
                log.warning(
                    "stream '%s': its key is still refused, but its publisher cannot be "
                    "dropped: the stream is no longer configured with that key",
                    denial.stream_id,
                )
                continue
            log.info("stream '%s' (%s): resuming its drop", denial.stream_id, target.shown)
            self._start_drop(target, denial.stream_id, None)

    async def close(self) -> None:
        """Cancel the drops in flight; the deny list keeps them for the next start."""
        for task in self._drops.values():
            task.cancel()
        await asyncio.gather(*self._drops.values(), return_exceptions=True)

    def _start_drop(self, target: Target, stream_id: str, detected_at: float | None) -> None:
        if target.digest in self._drops:
            return
        task = asyncio.create_task(self._drop(target, stream_id, detected_at))
        self._drops[target.digest] = task
        task.add_done_callback(lambda _: self._drops.pop(target.digest, None))

    async def _drop(self, target: Target, stream_id: str, detected_at: float | None) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                dropped = await self.adapter.drop(target)
                break
            except ApiError as exc:
                error = str(exc)
            except Exception as exc:  # a bug must not end enforcement: retry, loudly
                log.exception("stream '%s': drop failed with an internal error", stream_id)
                error = f"internal error ({exc.__class__.__name__})"
            metrics.DROP_FAILURES.inc()
            if self.denylist.denial(target, self.clock()) is None:
                log.error("stream '%s': gave up dropping its publisher: refusal expired", stream_id)
                return
            log.log(
                logging.WARNING if attempt == 1 else logging.DEBUG,
                "stream '%s' (%s): %s could not drop the publisher (%s); retrying with back-off",
                stream_id,
                target.shown,
                self.adapter.name,
                error,
            )
            await asyncio.sleep(backoff_s(attempt, self.retry_initial_s, self.retry_max_s))
        now = self.clock()
        self.denylist.dropped(target, now)
        metrics.DROPS.labels("dropped" if dropped else "no_publisher").inc()
        if detected_at is not None:  # 0 when run's clock is ahead of this host's
            metrics.KILL_LATENCY.observe(max(0.0, now - detected_at))
        outcome = "publisher dropped" if dropped else "no publisher was connected"
        log.info("stream '%s' (%s): %s (attempt %d)", stream_id, target.shown, outcome, attempt)
