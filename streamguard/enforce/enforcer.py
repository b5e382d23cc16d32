"""What a kill event does: refuse the stream key, then drop its publisher, once.

The key is refused first, so a publisher that reconnects while the drop is in flight
is already turned away by the publish hook. Each drop is retried with jittered
back-off until the media server confirms it; a drop a restart interrupted is resumed.
Duplicates (the same event again, or another event for a stream already being ended)
cause no second drop.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from streamguard.backoff import backoff_s
from streamguard.enforce.adapters import Adapter
from streamguard.enforce.api import ApiError
from streamguard.enforce.denylist import DenyList
from streamguard.enforce.events import InvalidEvent, KillOrder, parse_kill
from streamguard.enforce.targets import Resolver, Target

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
        self.counters: Counter[str] = Counter()
        self._drops: dict[str, asyncio.Task[None]] = {}  # by target digest
        self._refused: set[str] = set()  # digests whose first refusal was logged

    @property
    def pending_drops(self) -> int:
        return len(self._drops)

    async def on_message(self, topic_stream_id: str, payload: bytes) -> None:
        """Handle one message from ``PREFIX/v1/kill/+``; never raises."""
        try:
            self._on_message(topic_stream_id, payload)
        except Exception:  # a bug costs this message, never the subscription
            self.counters["internal_errors"] += 1
            log.exception("kill event for stream '%s': internal error", topic_stream_id)

    def _on_message(self, topic_stream_id: str, payload: bytes) -> None:
        try:
            order = parse_kill(payload, topic_stream_id)
        except InvalidEvent as exc:
            self.counters["malformed_events"] += 1
            log.warning(
                "kill topic of stream '%s': ignored a malformed event: %s", topic_stream_id, exc
            )
            return
        if order is None:
            self.counters["ignored_events"] += 1
            log.debug("stream '%s': ignored a review event on the kill topic", topic_stream_id)
            return
        now = self.clock()
        if not self.denylist.first_sight(order.event_id, now):
            self.counters["duplicate_events"] += 1
            log.debug("event %s: handled before; ignored", order.event_id)
            return
        target = self.resolver.resolve(order.stream_id)
        if target is None:
            self.counters["unknown_streams"] += 1
            log.warning(
                "event %s: stream '%s' is not a configured RTMP stream; nothing to end",
                order.event_id,
                order.stream_id,
            )
            return
        self._enforce(order, target, now)

    def _enforce(self, order: KillOrder, target: Target, now: float) -> None:
        previous = self.denylist.deny(target, order.stream_id, now, now + self.deny_for_s)
        self._refused.discard(target.digest)
        dropped_at = previous.dropped_at if previous else None
        if target.digest in self._drops or (
            dropped_at is not None and now - dropped_at < REDROP_AFTER_S
        ):
            self.counters["already_enforced"] += 1
            log.debug(
                "event %s: stream '%s' is already being ended", order.event_id, order.stream_id
            )
            return
        self.counters["kills"] += 1
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
        self._start_drop(target, order.stream_id)

    def may_publish(self, target: Target) -> bool:
        """The publish hook's answer for ``target``."""
        denial = self.denylist.denial(target, self.clock())
        if denial is None:
            self.counters["publishes_allowed"] += 1
            return True
        self.counters["publishes_refused"] += 1
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
            self._start_drop(target, denial.stream_id)

    async def close(self) -> None:
        """Cancel the drops in flight; the deny list keeps them for the next start."""
        for task in self._drops.values():
            task.cancel()
        await asyncio.gather(*self._drops.values(), return_exceptions=True)

    def _start_drop(self, target: Target, stream_id: str) -> None:
        if target.digest in self._drops:
            return
        task = asyncio.create_task(self._drop(target, stream_id))
        self._drops[target.digest] = task
        task.add_done_callback(lambda _: self._drops.pop(target.digest, None))

    async def _drop(self, target: Target, stream_id: str) -> None:
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
            self.counters["drop_failures"] += 1
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
        self.denylist.dropped(target, self.clock())
        self.counters["drops"] += 1
        outcome = "publisher dropped" if dropped else "no publisher was connected"
        log.info("stream '%s' (%s): %s (attempt %d)", stream_id, target.shown, outcome, attempt)
