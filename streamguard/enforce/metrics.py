"""Prometheus metrics of ``streamguard enforce``: ``streamguard_enforce_`` prefix, base
units, no per-stream labels.

They live in their own registry, served at enforce's ``/metrics``: the ``run``
service's metrics (the default registry) are not mixed in, nor these into its. The
standard process and Python metrics are added, as in the default registry.
"""

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from streamguard import __version__

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

BUILD_INFO = Gauge(
    "streamguard_enforce_build_info",
    "Version of the running streamguard enforce",
    ["version"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "streamguard_enforce_events_total",
    "Messages on the kill topic, by what was done with them",
    ["result"],
    registry=REGISTRY,
)
EVENT_RESULTS = (
    "kill",  # a stream is being ended
    "duplicate",  # an event id handled before
    "already_enforced",  # the stream's drop is under way or was just confirmed
    "unknown_stream",  # no configured RTMP stream has that id
    "ignored",  # a review event
    "malformed",
    "internal_error",  # a bug cost the message; should stay 0
)
STORE_FAILURES = Counter(
    "streamguard_enforce_store_failures_total",
    "Kill events that could not be stored (state file locked, full or failing): not "
    "acknowledged, so the broker sends them again after a reconnect",
    registry=REGISTRY,
)
DROPS = Counter(
    "streamguard_enforce_drops_total",
    "Drops the media server confirmed: a publisher dropped, or none was connected",
    ["outcome"],
    registry=REGISTRY,
)
DROP_OUTCOMES = ("dropped", "no_publisher")
DROP_FAILURES = Counter(
    "streamguard_enforce_drop_failures_total",
    "Drop attempts the media server did not confirm (each is retried with back-off)",
    registry=REGISTRY,
)
PUBLISHES = Counter(
    "streamguard_enforce_publishes_total",
    "Publishes the publish hook answered, by decision",
    ["decision"],
    registry=REGISTRY,
)
PUBLISH_DECISIONS = ("allowed", "refused")
HOOK_REJECTED = Counter(
    "streamguard_enforce_hook_rejected_total",
    "Publish hook calls refused unread: without the right secret, or not readable",
    ["reason"],
    registry=REGISTRY,
)
HOOK_REJECT_REASONS = ("bad_secret", "bad_request")
KILL_LATENCY = Histogram(
    "streamguard_enforce_kill_latency_seconds",
    "From the event's detected_at to the media server confirming the drop",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
PENDING_DROPS = Gauge(
    "streamguard_enforce_pending_drops",
    "Drops under way (being retried until the media server confirms)",
    registry=REGISTRY,
)
DENIED_KEYS = Gauge(
    "streamguard_enforce_denied_keys", "Stream keys the publish hook refuses", registry=REGISTRY
)
CONNECTED = Gauge(
    "streamguard_enforce_connected",
    "1 while subscribed to the kill topic on the MQTT broker, else 0",
    registry=REGISTRY,
)

BUILD_INFO.labels(__version__).set(1)
for _metric, _values in (
    (EVENTS, EVENT_RESULTS),
    (DROPS, DROP_OUTCOMES),
    (PUBLISHES, PUBLISH_DECISIONS),
    (HOOK_REJECTED, HOOK_REJECT_REASONS),
):
    for _value in _values:
        _metric.labels(_value)  # exported as 0 from the start, so rate() works at once
