"""Prometheus metrics: ``streamguard_`` prefix, base units, no per-stream labels.

With several worker processes, prometheus-client's multiprocess mode is used: the
supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it spawns the workers, each
worker writes its values to files there, and ``/metrics`` in the parent adds them
up. One port for the whole service, as with ``/streams``.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

from streamguard import __version__

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

BUILD_INFO = Gauge(
    "streamguard_build_info",
    "Version of the running streamguard",
    ["version"],
    multiprocess_mode="max",
)

# -- ingest: one reader thread per stream ---------------------------------------------
STREAMS = Gauge(
    "streamguard_streams", "Streams by watch state", ["state"], multiprocess_mode="livesum"
)
FRAMES_DECODED = Counter(
    "streamguard_frames_decoded_total",
    "Frames the decoders produced (only keyframes with keyframe sampling)",
)
FRAMES_SAMPLED = Counter("streamguard_frames_sampled_total", "Frames handed to hashing")
SAMPLES = Counter(
    "streamguard_samples_total",
    "Frames handed to hashing, by why: keyframe, gap (keyframes late), cut, probe, interval",
    ["reason"],
)
FRAMES_DROPPED = Counter(
    "streamguard_frames_dropped_total",
    "Sampled frames dropped unhashed because hashing fell behind (the newest is kept)",
)
SAMPLES_SKIPPED = Counter(
    "streamguard_samples_skipped_total",
    "Frames not sampled, by reason: decode_backlog and hash_backlog (streamguard fell "
    "behind), stream_cap and min_gap (a stream's flood cap), probe_budget, too_large",
    ["reason"],
)
DECODE_ERRORS = Counter("streamguard_decode_errors_total", "Packets the decoder rejected")
LIVE_EDGE_SKIPS = Counter(
    "streamguard_live_edge_skips_total",
    "Times decoding fell max_lag_s behind reading and jumped to the newest keyframe",
)
STREAMS_BEYOND_KEYFRAMES = Gauge(
    "streamguard_streams_beyond_keyframes",
    "Watched streams whose non-key frames are being decoded now (late keyframes, probes)",
    multiprocess_mode="livesum",
)
KEYFRAME_INTERVAL = Histogram(
    "streamguard_keyframe_interval_seconds",
    "Stream time between consecutive keyframes of watched streams",
    buckets=(0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 60.0),
)
PROBE_CPU = Counter(
    "streamguard_probe_cpu_seconds_total",
    "CPU time spent decoding non-key frames for random probes (bounded by probe_cpu)",
)
UNWATCHABLE = Counter(
    "streamguard_unwatchable_total",
    "Times a stream sent nothing streamguard could look at for unwatchable_after_s, by "
    "reason: too_large, decode_error, no_keyframe",
    ["reason"],
)
RECONNECTS = Counter(
    "streamguard_reconnects_total",
    "Stream reconnects, by why the previous connection ended",
    ["reason"],
)
ESCALATIONS = Counter(
    "streamguard_escalations_total",
    "Kills repeated because the stream still published still_live_after_s after one "
    "(reason still_live): nobody ended the broadcast",
)
STILL_LIVE_CHECKS = Counter(
    "streamguard_still_live_checks_total",
    "Looks at killed streams (no decoding), by what they found: live, ended, timed_out, error",
    ["outcome"],
)
BROADCASTS = Counter(
    "streamguard_broadcasts_total",
    "Broadcast timelines begun on watched streams (runtime/broadcast.py), by how their "
    "name was agreed: local (no cluster), recorded or adopted (Redis), failed (Redis "
    "unreachable: the local name, which another worker may not share)",
    ["agreement"],
)
INGEST_LAG = Gauge(
    "streamguard_ingest_lag_max_seconds",
    "Largest lag of a watched stream's reading behind its live edge",
    multiprocess_mode="livemax",
)
KEYFRAME_AGE = Gauge(
    "streamguard_keyframe_age_max_seconds",
    "Longest time a watched stream has gone without a sampled frame",
    multiprocess_mode="livemax",
)

# -- detection: hash, match, decide -------------------------------------------------
HASH_DURATION = Histogram(
    "streamguard_hash_duration_seconds",
    "Time to hash one sampled frame and search the blocklist",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
FRAMES_LOW_QUALITY = Counter(
    "streamguard_frames_low_quality_total",
    "Sampled frames whose PDQ quality was too low to match (blank, flat, dark)",
)
FRAMES_FEATURELESS = Counter(
    "streamguard_frames_featureless_total",
    "Sampled frames not looked up for an algo as featureless: pHash/dHash with too few "
    "stable bits, or a hash within threshold of a flat or gradient picture's",
    ["algo"],
)
MATCHES = Counter(
    "streamguard_matches_total",
    "Blocklist entries matched by a sampled frame, by algo and category",
    ["algo", "category"],
)
DECISIONS = Counter("streamguard_decisions_total", "Policy decisions", ["action"])
VIDEO_DECISIONS = Counter(
    "streamguard_video_decisions_total",
    "Policy decisions taken on a known video's aligned frames (a subset of decisions_total)",
    ["action"],
)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DECISION_LATENCY = Histogram(
    "streamguard_decision_latency_seconds",
    "From reading the deciding keyframe's packet to the decision",
    buckets=_LATENCY_BUCKETS,
)
INTERNAL_ERRORS = Counter(
    "streamguard_internal_errors_total",
    "Bugs caught without stopping the service (a frame or a connection lost); should stay 0",
)
WORKER_RESTARTS = Counter(
    "streamguard_worker_restarts_total",
    "Worker processes (--processes N) the parent started again, by reason: exited, hung, "
    "hung_at_start",
    ["reason"],
)
EVENT_LOOP_BLOCKED = Counter(
    "streamguard_event_loop_blocked_total",
    "Times a run process's event loop ran nothing for half of worker_timeout_s",
)

# -- events: outbox and delivery -------------------------------------------------------
DETECTION_LATENCY = Histogram(
    "streamguard_detection_latency_seconds",
    "From reading the deciding keyframe's packet to the event being published "
    "(acknowledged by the broker, or written to stdout)",
    buckets=_LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "streamguard_events_published_total", "Events delivered, by action", ["action"]
)
PUBLISH_FAILURES = Counter(
    "streamguard_publish_failures_total",
    "Broker connections or publishes that failed (the events wait in the outbox)",
)
EVENTS_RESENT = Counter(
    "streamguard_events_resent_total",
    "Delivered events published again after a lost broker connection, because a broker "
    "killed before its next save loses what it acknowledged (resend_after_reconnect_s)",
)
OUTBOX_EVENTS = Gauge(
    "streamguard_outbox_events", "Events waiting for the broker", multiprocess_mode="livesum"
)
OUTBOX_OLDEST_AGE = Gauge(
    "streamguard_outbox_oldest_age_seconds",
    "How long the oldest event in the outbox has waited (0 when empty)",
    multiprocess_mode="livemax",
)
OUTBOX_REFUSED = Counter(
    "streamguard_outbox_refused_total", "Events lost because the outbox was full"
)
OUTBOX_WRITE_ERRORS = Counter(
    "streamguard_outbox_write_errors_total",
    "Outbox writes that failed (disk full, I/O error); the events wait in memory meanwhile",
)

# -- blocklist and connections ---------------------------------------------------------
BLOCKLIST_ENTRIES = Gauge(
    "streamguard_blocklist_entries",
    "Blocklist entries by algo",
    ["algo"],
    multiprocess_mode="livemax",
)
BLOCKLIST_DEGENERATE = Gauge(
    "streamguard_blocklist_degenerate_entries",
    "Degenerate blocklist entries (a flat or gradient picture's hash is within threshold): "
    "loaded (allowed; they decide nothing on their own), or refused by the last file load",
    ["status"],
    multiprocess_mode="livemax",
)
BLOCKLIST_STALENESS = Gauge(
    "streamguard_blocklist_staleness_seconds",
    "Seconds since the blocklist was last known to equal the store (0 for files)",
    multiprocess_mode="livemax",
)
CONNECTED = Gauge(
    "streamguard_connected",
    "1 while connected to the service (redis, mqtt), else 0",
    ["service"],
    multiprocess_mode="livemin",
)

# -- cluster: stream leases and registration -----------------------------------------
CLUSTER_LEASES = Gauge(
    "streamguard_cluster_leases", "Stream leases held", multiprocess_mode="livesum"
)
CLUSTER_CAPACITY = Gauge(
    "streamguard_cluster_capacity",
    "Most streams the worker processes here would hold",
    multiprocess_mode="livesum",
)
CLUSTER_REGISTERED = Gauge(
    "streamguard_cluster_streams_registered",
    "Streams registered in Redis, cluster-wide",
    multiprocess_mode="livemax",
)
CLUSTER_UNLEASED = Gauge(
    "streamguard_cluster_streams_unleased",
    "Registered streams nobody holds a lease for, cluster-wide (watched by no one)",
    multiprocess_mode="livemin",
)
CLUSTER_WORKERS = Gauge(
    "streamguard_cluster_workers",
    "Worker processes with a live heartbeat, cluster-wide",
    multiprocess_mode="livemax",
)
CLUSTER_CLAIMS = Counter("streamguard_cluster_claims_total", "Stream leases claimed")
CLUSTER_RELEASES = Counter(
    "streamguard_cluster_releases_total",
    "Stream leases given up or lost, by reason (drain, rebalance, removed, taken, invalid)",
    ["reason"],
)
CLUSTER_HEARTBEAT_FAILURES = Counter(
    "streamguard_cluster_heartbeat_failures_total", "Heartbeats that could not reach Redis"
)
CLUSTER_FENCED = Counter(
    "streamguard_cluster_fenced_decisions_total",
    "Decisions not published because the stream's lease had been taken over",
)
CONTROL_COMMANDS = Counter(
    "streamguard_control_commands_total",
    "Stream registration commands, by source (webhook, mqtt, config), action and result",
    ["source", "action", "result"],
)

# -- incidents (docs/incidents.md) --------------------------------------------------------
INCIDENTS = Counter(
    "streamguard_incidents_total",
    "Incident commands handled by run, by action (open, close) and result "
    "(opened, closed, not_watching, empty, refused, failed)",
    ["action", "result"],
)
INCIDENT_RING_FRAMES = Gauge(
    "streamguard_incident_ring_frames",
    "Frame hashes kept for incidents, over every watched stream",
    multiprocess_mode="livesum",
)

# -- the matching API (streamguard api, docs/api.md) -------------------------------------
API_REQUESTS = Counter(
    "streamguard_api_requests_total",
    "API requests answered, by method, route (its template, 'other' for none), status code "
    "and client (the token's name; 'anonymous' without one)",
    ["method", "route", "status", "client"],
)
API_DURATION = Histogram(
    "streamguard_api_request_duration_seconds",
    "Time to answer an API request, from its head to the response, by method and route",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
API_REFUSALS = Counter(
    "streamguard_api_refusals_total",
    "API requests refused, by reason: unauthorized, malformed, too_large, "
    "picture_too_large, video_too_long, unsupported_media, undecodable, timeout, not_ready",
    ["reason"],
)
API_MATCHES = Counter(
    "streamguard_api_matches_total",
    "Blocklist entries an API request matched, by algorithm and category",
    ["algo", "category"],
)
API_DECISIONS = Counter(
    "streamguard_api_decisions_total",
    "What the policy decided on API requests: kill, review, none",
    ["decision"],
)
API_IN_FLIGHT = Gauge("streamguard_api_in_flight", "API requests being answered")
API_READY = Gauge(
    "streamguard_api_ready", "1 once the API's blocklist is loaded (what /readyz says), else 0"
)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """Make worker processes spawned from now on write their values to a new directory
    under ``$TMPDIR`` (the shipped deployments give a memory-backed /tmp), removed
    afterwards.

    Not in ``state_dir``, beside the outbox: prometheus-client writes through a
    memory map of sparse files, and a page it touches first on a full file system
    raises SIGBUS. With the outbox's disk full, a worker started again died of it while
    importing this module, and every restart after it (tests/faults/test_disk.py).
    These files need no disk: they are only read while the service runs.
    """
    directory = Path(tempfile.mkdtemp(prefix="streamguard-metrics-"))
    os.environ[MULTIPROC_VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[MULTIPROC_VARIABLE]
        shutil.rmtree(directory, ignore_errors=True)


def process_exited(pid: int) -> None:
    """Drop a dead worker's live gauges."""
    if MULTIPROC_VARIABLE in os.environ:
        multiprocess.mark_process_dead(pid)


class _Supervised:
    """Every worker's files plus the counters the parent itself changes, added up by
    name and labels. The parent writes no files: its metrics exist before the
    directory is set."""

    PARENT_COUNTERS = (
        WORKER_RESTARTS,
        CONTROL_COMMANDS,
        INCIDENTS,
        INTERNAL_ERRORS,
        EVENT_LOOP_BLOCKED,
    )

    def __init__(self, directory: Path) -> None:
        self._files = multiprocess.MultiProcessCollector(None, path=str(directory))

    def collect(self) -> Iterator[Metric]:
        own = {family.name: family for c in self.PARENT_COUNTERS for family in c.collect()}
        for family in self._files.collect():
            parent = own.pop(family.name, None)
            yield family if parent is None else _added(family, parent)
        yield from (_added(family, None) for family in own.values())


def _added(family: Metric, other: Metric | None) -> Metric:
    """``family`` with ``other``'s samples added to it, without ``_created`` samples
    (multiprocess mode has none)."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in [*family.samples, *(other.samples if other else [])]:
        if not sample.name.endswith("_created"):
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + sample.value
    total = Metric(family.name, family.documentation, family.type, family.unit)
    for (name, labels), value in values.items():
        total.add_sample(name, dict(labels), value)
    return total


def render(multiprocess_dir: Path | None) -> bytes:
    """The exposition text: this process's registry, or every worker's files."""
    if multiprocess_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    registry.register(_Supervised(multiprocess_dir))
    return generate_latest(registry)


BUILD_INFO.labels(__version__).set(1)
# Labelled counters are exported as 0 from the start, so rate() sees their first increase.
for _action in ("kill", "review"):
    DECISIONS.labels(_action)
    VIDEO_DECISIONS.labels(_action)
    EVENTS_PUBLISHED.labels(_action)
for _reason in ("exited", "hung", "hung_at_start"):
    WORKER_RESTARTS.labels(_reason)
for _algo in ("pdq", "phash", "dhash"):
    FRAMES_FEATURELESS.labels(_algo)
for _status in ("loaded", "refused"):
    BLOCKLIST_DEGENERATE.labels(_status)
for _action, _result in (("open", "opened"), ("close", "closed")):
    INCIDENTS.labels(_action, _result)
for _reason in ("ended", "open_failed", "no_video", "stalled", "read_failed", "internal_error"):
    RECONNECTS.labels(_reason)
