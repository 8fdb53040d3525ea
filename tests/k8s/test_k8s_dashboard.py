"""The operator's view, offline: every PromQL expression of the Grafana dashboard and of the alert rules
parses, and names only series the services export (a real scrape of every instrument); the docs' metrics
table is exactly what is exported; the dashboard is well formed and provisioned by a ConfigMap in both
overlays; each alert has a runbook section in docs/observability.md and says whom it pages."""

import json

import pytest

from tests.k8s import promql
from tests.k8s.manifests import OVERLAYS, of_kind, render

PANEL_TYPES = {"row", "stat", "timeseries", "bargauge", "table", "state-timeline"}
TEAMS = {"payments-operations", "mainframe", "channel-integrations", "platform"}


def test_every_expression_parses_and_reads_only_exported_series():
    exported = promql.exported_series()
    expressions = [(f"panel {title!r}", expr) for title, expr in promql.dashboard_expressions()]
    expressions += [(f"alert {rule['alert']}", rule["expr"]) for rule in promql.alerts()]
    assert len(expressions) > 25
    for where, expr in expressions:
        try:
            series = promql.series_read(expr)
        except ValueError as error:
            raise AssertionError(f"{where}: {expr!r} does not parse: {error}") from None
        assert series, f"{where} reads no series"
        assert series <= exported, f"{where} reads {sorted(series - exported)}, which no service exports"


def test_the_check_bites():
    for broken in ("sum(rate(paymesh_payments_total[5m])", "paymesh_payments_total{channel=atm}",
                   "histogram_quantile(0.99, rate(paymesh_online_duration_seconds_bucket[5m]) >"):
        with pytest.raises(ValueError):
            promql.series_read(broken)
    assert promql.series_read('max(paymesh_online_duration_seconds_count) / on () up') == {
        "paymesh_online_duration_seconds_count", "up"}
    assert "up" not in promql.exported_series()  # Prometheus's own, not ours: an alert on it would be refused
    assert "paymesh_payments" not in promql.exported_series()  # a counter is read as _total


def test_the_docs_table_is_exactly_what_the_services_export():
    assert promql.documented_metrics() == promql.queryable_names()


def test_the_issue_s_figures_are_all_on_the_dashboard():
    read = set().union(*(promql.series_read(expr) for _, expr in promql.dashboard_expressions()))
    assert read >= {
        "paymesh_payments_total", "paymesh_online_duration_seconds_bucket", "paymesh_refusals_total",
        "paymesh_outbox_depth", "paymesh_outbox_oldest_age_seconds", "paymesh_bridge_queued",
        "paymesh_bridge_oldest_age_seconds", "paymesh_mainframe_link_up", "paymesh_peer_up",
        "paymesh_confirmations_consumer_lag", "paymesh_webhook_deliveries_total", "paymesh_business_day_state",
        "paymesh_business_day_cutoff_timestamp_seconds", "paymesh_late_postings_total",
    }


def test_the_dashboard_is_well_formed():
    board = promql.dashboard()
    assert board["uid"] == "paymesh-day" and board["timezone"] == "America/Lima"
    assert board["time"] == {"from": "now/d", "to": "now"}  # the day so far
    (datasource,) = board["templating"]["list"]
    assert (datasource["name"], datasource["type"], datasource["query"]) == ("datasource", "datasource", "prometheus")
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_provisions_the_dashboard_for_grafanas_sidecar(overlay):
    (config_map,) = [c for c in of_kind(render(overlay), "ConfigMap")
                     if c["metadata"]["name"] == "paymesh-grafana-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "paymesh"
    assert json.loads(config_map["data"]["paymesh-day.json"]) == promql.dashboard()


def test_every_alert_pages_someone_and_has_its_runbook():
    docs = promql.OBSERVABILITY.read_text()
    for rule in promql.alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket") and rule["labels"]["team"] in TEAMS, name
        assert rule["annotations"]["summary"], name
        if "docs/observability.md#" in rule["annotations"].get("description", ""):
            anchor = rule["annotations"]["description"].split("docs/observability.md#")[1].split(".")[0].rstrip()
            assert anchor == name.lower(), name
            assert f"\n### {name}\n" in docs, f"no runbook section for {name}"
            section = docs.split(f"\n### {name}\n")[1].split("\n### ")[0]
            says = "Pages " if rule["labels"]["severity"] == "page" else "A ticket for "
            assert f"{says}{rule['labels']['team']}" in section.replace("\n", " ").replace("Pages the ", "Pages "), \
                f"{name}'s runbook does not say whom it pages, and how"
    issue = {"PaymeshOnlineLatencyHigh", "PaymeshCoreDown", "PaymeshMainframeLinkDown", "PaymeshOutboxStuck",
             "PaymeshBridgeQueueStuck", "PaymeshMainframeRejecting", "PaymeshOutboxRefusing",
             "PaymeshWebhooksDeadLettered", "PaymeshConsumerLagging", "PaymeshBusinessDayNotClosed"}
    assert issue <= {rule["alert"] for rule in promql.alerts()}
