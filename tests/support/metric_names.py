"""Metric names the services expose, and the names PromQL expressions refer to.

Used by the tests of the Prometheus rules and of the Grafana dashboard: every
``streamguard_*`` name they use must be exposed by a metric, and every ``level:metric:op``
name must be a recording rule.
"""

import importlib
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "streamguard.rules.yml"
ENFORCE_METRICS_MODULE = "streamguard.enforce.metrics"

# The sample names a metric family of each type exposes (text format 0.0.4 and OpenMetrics).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
}
# String literals and range/subquery brackets ([5m], [1h:1m]) hold no names.
_NOT_NAMES = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|\[[^\]]*\]')
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def registries() -> list[CollectorRegistry]:
    """The registry of ``streamguard run``, and that of ``streamguard enforce`` once its
    module (streamguard/enforce/metrics.py) exists."""
    importlib.import_module("streamguard.observability.metrics")  # registers on REGISTRY
    found = [REGISTRY]
    try:
        enforce = importlib.import_module(ENFORCE_METRICS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != ENFORCE_METRICS_MODULE:
            raise
    else:
        registry = getattr(enforce, "REGISTRY", REGISTRY)
        if registry is not REGISTRY:
            found.append(registry)
    return found


def run_registry() -> CollectorRegistry:
    """The registry of ``streamguard run`` alone."""
    return registries()[0]


def metric_names_of(registry: CollectorRegistry) -> list[str]:
    """The ``streamguard_`` metrics of ``registry`` as written in PromQL and docs:
    counters with ``_total``, histograms by their base name."""
    return [
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
        if family.name.startswith("streamguard_")
    ]


def known_metric_names() -> set[str]:
    """Every sample name the services can expose: ``streamguard_decisions_total``,
    ``streamguard_detection_latency_seconds_bucket``, ... (also for labelled metrics
    that have no sample yet)."""
    names: set[str] = set()
    for registry in registries():
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
    return {name for name in names if name.startswith("streamguard_")}


def names_in_expression(expression: str) -> set[str]:
    """The identifiers of a PromQL expression outside string literals and brackets:
    metric and recording rule names, but also functions, keywords and label names."""
    return set(_IDENTIFIER.findall(_NOT_NAMES.sub(" ", expression)))


def streamguard_metrics_in(expression: str) -> set[str]:
    return {name for name in names_in_expression(expression) if name.startswith("streamguard_")}


def recording_rules_in(expression: str) -> set[str]:
    return {name for name in names_in_expression(expression) if ":" in name}


def load_rules(path: Path = RULES) -> list[dict[str, Any]]:
    """Every rule of every group of a Prometheus rule file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def recording_rule_names(path: Path = RULES) -> set[str]:
    return {rule["record"] for rule in load_rules(path) if "record" in rule}


def metrics_behind_rules(path: Path = RULES) -> dict[str, set[str]]:
    """The ``streamguard_`` metrics each recording rule reads, through the rules it reads."""
    expressions = {rule["record"]: rule["expr"] for rule in load_rules(path) if "record" in rule}
    behind: dict[str, set[str]] = {}

    def resolve(name: str) -> set[str]:
        if name not in behind:
            expression = expressions[name]
            behind[name] = streamguard_metrics_in(expression).union(
                *(resolve(rule) for rule in recording_rules_in(expression) if rule in expressions)
            )
        return behind[name]

    for name in expressions:
        resolve(name)
    return behind
