"""deploy/grafana: the dashboard is valid, its queries use only exposed metrics and defined
recording rules, its panels do not overlap, and the provisioning files fit it."""

import json
import re
from itertools import combinations

import pytest
import yaml

from ..support.metric_names import (
    ROOT,
    known_metric_names,
    metric_names_of,
    metrics_behind_rules,
    recording_rule_names,
    recording_rules_in,
    run_registry,
    streamguard_metrics_in,
)

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "streamguard.json"
DATASOURCE_UID = "prometheus"


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def all_panels(dashboard):
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard):
    return [panel for panel in all_panels(dashboard) if panel["type"] != "row"]


def expressions(dashboard):
    """(panel title, expr) of every target."""
    return [
        (panel["title"], target["expr"])
        for panel in query_panels(dashboard)
        for target in panel["targets"]
    ]


def test_required_top_level_keys(dashboard):
    missing = {"uid", "title", "panels", "schemaVersion"} - set(dashboard)
    assert not missing, f"dashboard lacks {sorted(missing)}"
    assert dashboard["uid"] == "streamguard" and dashboard["title"] == "streamguard"
    assert dashboard["schemaVersion"] >= 36, "schemaVersion of a current Grafana"


def test_panels_have_unique_ids_titles_and_targets(dashboard):
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"repeated panel ids: {sorted(ids)}"
    for panel in all_panels(dashboard):
        assert panel.get("title"), f"panel {panel['id']} has no title"
    for panel in query_panels(dashboard):
        assert panel.get("targets"), f"panel {panel['title']!r} has no targets"
        for target in panel["targets"]:
            assert target.get("expr"), f"panel {panel['title']!r}: a target without expr"


def test_queries_use_only_exposed_metrics(dashboard):
    known = known_metric_names()
    for title, expr in expressions(dashboard):
        unknown = streamguard_metrics_in(expr) - known
        assert not unknown, f"panel {title!r} uses metrics no registry exposes: {sorted(unknown)}"


def test_queries_use_only_defined_recording_rules(dashboard):
    recorded = recording_rule_names()
    for title, expr in expressions(dashboard):
        undefined = recording_rules_in(expr) - recorded
        assert not undefined, f"panel {title!r} uses undefined recording rules: {undefined}"


def test_every_query_is_filtered_by_an_instance_variable(dashboard):
    variables = ("$instance", "$enforce_instance", "$api_instance")
    for title, expr in expressions(dashboard):
        assert any(f'=~"{variable}"' in expr for variable in variables), (
            f"panel {title!r}: {expr} ignores the instance selection"
        )


def row_panels(dashboard, title):
    """The panels under the (expanded) row ``title``, up to the next row."""
    panels = dashboard["panels"]
    (start,) = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == title]
    following = panels[start + 1 :]
    end = next((i for i, p in enumerate(following) if p["type"] == "row"), len(following))
    return following[:end]


def test_matching_api_row_shows_every_api_metric_of_the_api_instances_only(dashboard):
    panels = row_panels(dashboard, "Matching API")
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    assert exprs and all('=~"$api_instance"' in expr for expr in exprs)
    behind = metrics_behind_rules()
    read = set().union(
        *(streamguard_metrics_in(expr) for expr in exprs),
        *(behind[rule] for expr in exprs for rule in recording_rules_in(expr)),
    )
    shown = {re.sub(r"_(bucket|count|sum)$", "", name) for name in read}
    api = {name for name in metric_names_of(run_registry()) if name.startswith("streamguard_api_")}
    assert not api - shown, f"not on the Matching API row: {sorted(api - shown)}"
    # The other rows are about run and enforce: none of them reads the API's metrics.
    elsewhere = [expr for title, expr in expressions(dashboard) if '"$api_instance"' not in expr]
    assert not any("streamguard_api_" in expr for expr in elsewhere)


def test_panels_do_not_overlap(dashboard):
    def cells(panel):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the grid"
        return {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }

    for a, b in combinations(dashboard["panels"], 2):
        assert not cells(a) & cells(b), f"panels {a['title']!r} and {b['title']!r} overlap"


def test_datasource_is_the_variable_or_the_provisioned_uid(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == DATASOURCE_UID
    allowed = {"${datasource}", DATASOURCE_UID}
    for panel in query_panels(dashboard):
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(source["uid"] in allowed for source in sources), (
            f"panel {panel['title']!r} uses another data source: {sources}"
        )


def test_instance_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # The API exposes streamguard_build_info too, and run's metrics at 0: not run.
    assert variables["instance"]["definition"] == (
        'label_values(streamguard_build_info{job!="streamguard-api"}, instance)'
    )
    assert variables["api_instance"]["definition"] == (
        'label_values(streamguard_build_info{job="streamguard-api"}, instance)'
    )
    # run's multiprocess /metrics also carries streamguard_enforce_* series: not enforce.
    assert variables["enforce_instance"]["definition"] == (
        'label_values(streamguard_enforce_build_info{job="streamguard-enforce"}, instance)'
    )


def test_datasource_provisioning():
    data = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert data["apiVersion"] == 1
    [source] = data["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provisioning():
    data = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "streamguard.yml").read_text(encoding="utf-8")
    )
    assert data["apiVersion"] == 1
    [provider] = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
