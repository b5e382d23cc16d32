"""deploy/prometheus: the rules use only metrics the services expose, with a runbook for
every alert and a unit test where it fires and one where it does not. (`make lint` runs
promtool: the config, the rules, and the rule unit tests.)"""

import re

import pytest
import yaml

from ..support.metric_names import (
    ROOT,
    RULES,
    known_metric_names,
    load_rules,
    metric_names_of,
    recording_rule_names,
    recording_rules_in,
    run_registry,
    streamguard_metrics_in,
)

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_TESTS = PROMETHEUS / "streamguard.rules.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK = "https://github.com/streamguard/streamguard/blob/main/docs/operations.md#"
SEVERITIES = {"page", "ticket"}

ALERTS = [rule for rule in load_rules() if "alert" in rule]


def test_config_scrapes_every_service_and_loads_the_rules():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "streamguard": ["127.0.0.1:9310"],
        "streamguard-enforce": ["127.0.0.1:9311"],
        "streamguard-api": ["127.0.0.1:9312"],
    }
    assert config["rule_files"] == ["streamguard.rules.yml"]


# The names a rule's expression may use, by kind: how to find them in an expression, the
# ones that exist, and what one that does not is.
NAMES = {
    "metrics": (streamguard_metrics_in, known_metric_names, "metrics no registry exposes"),
    "recording_rules": (recording_rules_in, recording_rule_names, "recording rules not defined"),
}


@pytest.mark.parametrize("kind", NAMES)
def test_rules_use_only_names_that_exist(kind):
    names_in, existing, missing = NAMES[kind]
    known = existing()
    for rule in load_rules():
        unknown = names_in(rule["expr"]) - known
        name = rule.get("record") or rule.get("alert")
        assert not unknown, f"{name} uses {missing}: {sorted(unknown)}"


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_has_for_severity_and_annotations(alert):
    assert alert.get("for"), "every alert needs a for: duration"
    assert alert.get("labels", {}).get("severity") in SEVERITIES, f"severity: one of {SEVERITIES}"
    annotations = alert.get("annotations", {})
    missing = {"summary", "description", "runbook_url"} - set(annotations)
    assert not missing, f"missing annotations: {sorted(missing)}"
    assert annotations["runbook_url"] == RUNBOOK + alert["alert"].lower(), (
        "runbook_url must point at the alert's own section of docs/operations.md"
    )


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_runbook_anchor_is_a_heading_in_operations_md():
    headings = re.findall(r"^#{1,6} (.+)$", OPERATIONS.read_text(encoding="utf-8"), re.M)
    anchors = {github_anchor(heading) for heading in headings}
    for alert in ALERTS:
        anchor = alert["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in anchors, f"docs/operations.md has no heading for #{anchor}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in ALERTS:
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"no test where {name} fires"
        assert any(not case["exp_alerts"] for case in mine), f"no test where {name} stays quiet"


def test_every_rule_file_rule_is_loaded_by_the_unit_tests():
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [RULES.name]


def test_operations_md_lists_every_run_metric():
    """The metric table of docs/operations.md names every metric of ``streamguard run``
    (enforce's are in docs/enforcement.md)."""
    text = OPERATIONS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(streamguard_[a-z0-9_]+)`", text, re.M))
    exposed = set(metric_names_of(run_registry()))
    assert not exposed - documented, (
        f"docs/operations.md does not describe: {sorted(exposed - documented)}"
    )
    assert not documented - exposed, (
        f"docs/operations.md describes metrics that do not exist: {sorted(documented - exposed)}"
    )
