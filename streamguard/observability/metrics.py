"""Prometheus metrics: ``streamguard_`` prefix, base units, no per-stream labels.

With several worker processes, prometheus-client's multiprocess mode is used: the
supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it spawns the workers, each
worker writes its values to files there, and ``/metrics`` in the parent adds them
up. One port for the whole service, as with ``/streams``.
"""

import os
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

from streamguard import __version__

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

BUILD_INFO = Gauge(
    "streamguard_build_info",
    "Version of the running streamguard",
    ["version"],
    multiprocess_mode="max",
)
STREAMS = Gauge(
    "streamguard_streams", "Streams by watch state", ["state"], multiprocess_mode="livesum"
)
FRAMES_SAMPLED = Counter("streamguard_frames_sampled_total", "Frames decoded and handed to hashing")
DECISIONS = Counter("streamguard_decisions_total", "Policy decisions", ["action"])
DETECTION_LATENCY = Histogram(
    "streamguard_detection_latency_seconds",
    "From reading the deciding keyframe's packet to the decision",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTBOX_EVENTS = Gauge(
    "streamguard_outbox_events", "Events waiting for the broker", multiprocess_mode="livesum"
)
BLOCKLIST_ENTRIES = Gauge(
    "streamguard_blocklist_entries",
    "Blocklist entries by algo",
    ["algo"],
    multiprocess_mode="livemax",
)
BLOCKLIST_STALENESS = Gauge(
    "streamguard_blocklist_staleness_seconds",
    "Seconds since the blocklist was last known to equal the store",
    multiprocess_mode="livemax",
)
CONNECTED = Gauge(
    "streamguard_connected",
    "1 while connected to the service (redis, mqtt), else 0",
    ["service"],
    multiprocess_mode="livemin",
)


def use_multiprocess_dir(directory: Path) -> None:
    """Make worker processes spawned from now on write their values to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_VARIABLE] = str(directory)


def process_exited(pid: int) -> None:
    """Drop a dead worker's live gauges."""
    if MULTIPROC_VARIABLE in os.environ:
        multiprocess.mark_process_dead(pid)


def render(multiprocess_dir: Path | None) -> bytes:
    """The exposition text: this process's registry, or every worker's files."""
    if multiprocess_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    return generate_latest(registry)


BUILD_INFO.labels(__version__).set(1)
