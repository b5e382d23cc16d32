"""The streams one process watches: a `StreamWorker` and its task per stream.

Without a cluster they are the configured streams, started together once the
blocklist has loaded. With one, the cluster member starts and retires them as it
claims and loses leases.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from streamguard.config import StreamConfig
from streamguard.observability import metrics
from streamguard.runtime.cluster import Lease
from streamguard.runtime.worker import StreamWorker

StreamWorkerFactory = Callable[[StreamConfig], StreamWorker]


class StreamSet:
    def __init__(self, make_worker: StreamWorkerFactory, handover_s: Callable[[], float]) -> None:
        """``handover_s``: how long a stream given to another process stays watched here."""
        self._make_worker = make_worker
        self._handover_s = handover_s
        self.workers: dict[str, StreamWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def add(self, stream: StreamConfig) -> None:
        """Show ``stream`` in /streams as "starting"; `start_all` starts it."""
        self.workers[stream.id] = self._make_worker(stream)

    def start_all(self) -> None:
        for stream_id, worker in self.workers.items():
            self._tasks[stream_id] = asyncio.create_task(worker.run(), name=stream_id)

    def start(self, stream: StreamConfig, lease: Lease | None = None) -> None:
        """Start watching ``stream`` (a lease the cluster claimed for it)."""
        if stream.id in self.workers:
            self.retire(stream.id, "replaced")
        self.workers[stream.id] = worker = self._make_worker(stream)
        self._tasks[stream.id] = asyncio.create_task(worker.run(), name=stream.id)

    def retire(self, stream_id: str, reason: str) -> None:
        """Stop watching a stream this process no longer holds.

        A stream given to another process (``rebalance``) is watched until that one has
        had time to start: briefly twice rather than not at all. Its retained status is
        cleared if it was removed; after a handover the new holder reports it, so this
        process stays quiet.
        """
        worker = self.workers.get(stream_id)
        if worker is None:
            return
        if reason == "rebalance":
            loop = asyncio.get_running_loop()
            loop.call_later(self._handover_s(), self._retire, stream_id, worker, reason)
        else:
            self._retire(stream_id, worker, reason)

    def _retire(self, stream_id: str, worker: StreamWorker, reason: str) -> None:
        if self.workers.get(stream_id) is not worker:
            return  # already retired, or claimed again since
        del self.workers[stream_id]
        worker.retire(clear_status=reason == "removed")
        self._tasks.pop(stream_id).cancel()

    async def stop_all(self, *, report: bool) -> None:
        """Stop every stream; without ``report`` their final states are not published
        (in a cluster the next holder reports them)."""
        for worker in self.workers.values():
            worker.stop(report=report)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def snapshots(self) -> list[dict[str, Any]]:
        return [worker.snapshot() for worker in self.workers.values()]

    def update_gauges(self) -> None:
        """Set the gauges that mirror the streams' own state (once a second)."""
        now = time.time()
        workers = self.workers.values()
        metrics.INGEST_LAG.set(max((w.lag_s() for w in workers), default=0.0))
        metrics.KEYFRAME_AGE.set(max((w.keyframe_age_s(now) for w in workers), default=0.0))
        metrics.STREAMS_BEYOND_KEYFRAMES.set(sum(w.decoding_beyond_keyframes() for w in workers))
