"""One process of ``streamguard run``: its parts, wired in the order frames flow, and
the order they start and stop in.

A frame goes source -> `StreamWorker` (sample, hash on the shared hash threads, match
against the blocklist, decide) -> event sink (outbox, then MQTT). Around that path: the
blocklist's source (files, or Redis followed by `BlocklistSync`), the probe budget the
streams share, and with ``[cluster]`` the `ClusterMember` that hands this process its
streams.

With Redis, an `IncidentDesk` answers incident requests for the streams watched here
(docs/incidents.md).

Start: sync and sink first; the streams (or the cluster member) once the blocklist has
loaded, since frames before that could not be matched against anything. Stop, in this
order: the cluster member gives its leases back (others take over at once) while the
streams are still watched here for a handover; the streams; the sync; the sink, which
gets a few seconds to deliver what is waiting (the outbox keeps the rest).
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from streamguard import lifecycle
from streamguard.blocklist.files import load_blocklist_files
from streamguard.blocklist.sync import BlocklistSync
from streamguard.config import Settings, StreamConfig
from streamguard.events.broker import client_id_base
from streamguard.events.mqtt import MqttSink
from streamguard.events.outbox import Outbox, outbox_path
from streamguard.events.sinks import EventSink, StdoutSink
from streamguard.ingest.budget import CpuBudget
from streamguard.observability import metrics
from streamguard.runtime.cluster import ClusterMember
from streamguard.runtime.incident_desk import IncidentDesk
from streamguard.runtime.streams import StreamSet
from streamguard.runtime.worker import StreamWorker

log = logging.getLogger("streamguard.run")
STATE_INTERVAL_S = 1.0
SYNC_STOP_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 5.0
# A stream handed to another process is watched here until the next holder has claimed
# it (one heartbeat) and opened it (RTMP play + first keyframe: p99 2.7 s measured).
HANDOVER_OPEN_S = 3.0


class WorkerProcess:
    """The streams of one process, and everything they share."""

    def __init__(self, settings: Settings, number: int = 0, member_id: str = "") -> None:
        """``number``: this process among ``run``'s (its outbox and MQTT client id);
        ``member_id``: its name in the cluster."""
        self.settings = settings
        self.member_id = member_id or f"{socket.gethostname()}/{os.getpid()}"
        # Where frames are matched: the blocklist, from files or followed in Redis.
        self.sync: BlocklistSync | None = None
        if settings.redis.url:
            self.sync = BlocklistSync(settings.redis, settings.max_distance)
        self.blocklist = self.sync.blocklist if self.sync else load_blocklist_files(settings)
        # What the streams share: hash threads, the probe budget.
        threads = settings.hash_threads or os.cpu_count() or 1
        self._hash_pool = ThreadPoolExecutor(threads, thread_name_prefix="hash")
        self._probe_budget = CpuBudget(settings.sampling.probe_cpu)
        # Where decisions go.
        self.mqtt: MqttSink | None = None
        self.sink: EventSink = StdoutSink()
        if settings.mqtt.url:
            outbox = Outbox(outbox_path(settings.state_dir, number), settings.outbox_max_events)
            identifier = f"{client_id_base(settings.mqtt)}-{number}"
            self.sink = self.mqtt = MqttSink(settings.mqtt, outbox, identifier)
        # Which streams: the configured ones, or the cluster's leases.
        self.streams = StreamSet(self._stream_worker, self.handover_s)
        self.cluster: ClusterMember | None = None
        if settings.cluster.enabled:
            self.cluster = ClusterMember(
                settings.redis,
                settings.cluster,
                self.member_id,
                self.streams.start,
                self.streams.retire,
            )
        else:  # shown in /streams as "starting" until the blocklist loads
            for stream in settings.streams:
                self.streams.add(stream)
        # Incident requests for the streams watched here.
        self.desk: IncidentDesk | None = None
        if settings.redis.url:
            self.desk = IncidentDesk(settings.redis, self.streams.workers, self.holds)

    def _stream_worker(self, stream: StreamConfig) -> StreamWorker:
        fence = agree = None
        if self.cluster is not None:
            fence = partial(self.cluster.still_holds, stream.id)
            agree = partial(self.cluster.broadcasts.agree, stream.id)
        return StreamWorker(
            stream,
            self.settings.ingest,
            self.blocklist,
            self.sink,
            self._hash_pool,
            self.member_id,
            self.settings.policy,
            robustness=self.settings.detect,
            fence=fence,
            agree=agree,
            sample=self.settings.sample,
            guard=self.settings.sampling,
            budget=self._probe_budget,
            incidents=self.settings.incidents,
            incident_actions=self.sync.incident_actions if self.sync else None,
        )

    async def holds(self, stream_id: str) -> bool:
        """Whether this process answers for the stream: without a cluster, always; in
        one, while it holds the lease (not while handing it over)."""
        if self.cluster is None:
            return True
        return stream_id in self.cluster.leases and await self.cluster.still_holds(stream_id)

    def handover_s(self) -> float:
        """How long a stream given back to the cluster stays watched here."""
        return 0.0 if self.cluster is None else self.cluster.interval_s + HANDOVER_OPEN_S

    def snapshots(self) -> list[dict[str, Any]]:
        return self.streams.snapshots()

    def blocklist_status(self) -> dict[str, Any]:
        if self.sync is not None:
            return self.sync.status()
        return {"source": "files", "loaded": True, "entries": len(self.blocklist)}

    @property
    def ready(self) -> bool:
        """Blocklist loaded and events can go out."""
        return self.blocklist_status()["loaded"] and self.sink.ready

    def update_gauges(self) -> None:
        """Set the gauges that mirror state held elsewhere (once a second)."""
        self.streams.update_gauges()
        metrics.INCIDENT_RING_FRAMES.set(sum(len(w.recent) for w in self.streams.workers.values()))
        for algo, count in self.blocklist.counts().items():
            metrics.BLOCKLIST_ENTRIES.labels(algo).set(count)
        loaded = sum(self.blocklist.degenerate_counts().values())
        metrics.BLOCKLIST_DEGENERATE.labels("loaded").set(loaded)
        if self.sync is not None:
            metrics.BLOCKLIST_STALENESS.set(self.sync.stale_s or 0.0)
            metrics.CONNECTED.labels("redis").set(int(self.sync.link.connected))
        if self.mqtt is not None:
            metrics.OUTBOX_EVENTS.set(len(self.mqtt.outbox))
            metrics.OUTBOX_OLDEST_AGE.set(self.mqtt.outbox.oldest_age_s(time.time()))
            metrics.CONNECTED.labels("mqtt").set(int(self.mqtt.link.connected))
        if self.cluster is not None:
            metrics.CLUSTER_LEASES.set(len(self.cluster.leases))
            metrics.CLUSTER_CAPACITY.set(self.settings.cluster.capacity)
            metrics.CLUSTER_REGISTERED.set(self.cluster.registered)
            metrics.CLUSTER_WORKERS.set(self.cluster.live_workers)
            metrics.CONNECTED.labels("cluster").set(int(self.cluster.link.connected))

    async def run(self, stop: asyncio.Event, tick: Callable[[], None] | None = None) -> None:
        """Watch until ``stop`` is set, calling ``tick`` once a second."""
        services: list[lifecycle.Running] = []  # in stop order
        if self.sync is not None:
            services.append(lifecycle.start("blocklist sync", self.sync, SYNC_STOP_TIMEOUT_S))
        if self.mqtt is not None:
            services.append(lifecycle.start("MQTT sink", self.mqtt, DRAIN_TIMEOUT_S))
        if self.desk is not None:
            services.insert(0, lifecycle.start("incident desk", self.desk, SYNC_STOP_TIMEOUT_S))
        member: lifecycle.Running | None = None
        try:
            while not stop.is_set():
                if self.blocklist_status()["loaded"] and not (self.streams.started or member):
                    member = self._start_watching()
                self.update_gauges()
                if tick is not None:
                    tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATE_INTERVAL_S)
        finally:
            if member is not None:
                await self._leave_cluster(member)
            await self.streams.stop_all(report=self.cluster is None)
            await lifecycle.stop_in_order(services)  # the sync, then the sink's drain
            self._hash_pool.shutdown(wait=False, cancel_futures=True)
            log.info("stopped")

    def _start_watching(self) -> lifecycle.Running | None:
        if self.cluster is None:
            log.info("watching %d streams", len(self.streams.workers))
            self.streams.start_all()
            return None
        log.info("joining the cluster as %s", self.member_id)
        return lifecycle.start("cluster member", self.cluster, SYNC_STOP_TIMEOUT_S)

    async def _leave_cluster(self, member: lifecycle.Running) -> None:
        """Give the leases back, then keep watching while the next holders open them."""
        assert self.cluster is not None
        await lifecycle.stop(member)
        if self.streams.workers and self.cluster.live_workers > 1:
            await asyncio.sleep(self.handover_s())
