"""k8s/monitoring: the alert rules well formed and on series the services really export; the
PodMonitor valid against the Prometheus Operator's CRD fields and on every gRPC pod's metrics port."""

import jsonschema
import pytest
import yaml

from tests.k8s import promql
from tests.k8s.manifests import OVERLAYS, build, of_kind, render, workloads
from tests.k8s.promql import REPO, RULES


def test_every_alert_is_well_formed_and_reads_an_exported_series():
    rule = yaml.safe_load(RULES.read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {a["alert"] for a in alerts} >= {"PaymeshOutboxRowRefused", "PaymeshCertificateExpiringSoon"}
    exported = promql.exported_series()  # tests/k8s/test_k8s_dashboard.py: parsed, and from a real scrape
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket") and alert["annotations"]["summary"]
        series = promql.series_read(alert["expr"])
        assert series and series <= exported, alert["expr"]
    assert '"router.outbox.refused"' in (REPO / "payment_router" / "outbox.py").read_text()


# The fields of monitoring.coreos.com/v1 PodMonitor that k8s/monitoring uses, typed as the Prometheus
# Operator's CRD (monitoring.coreos.com_podmonitors.yaml, operator 0.91) types them; unknown fields refused.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "required": ["key", "operator"],
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
PODMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["selector"],
            "properties": {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "jobLabel": {"type": "string"},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "podMetricsEndpoints": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": {"type": "string", "pattern": DURATION},
                        "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        "honorLabels": {"type": "boolean"},
                    },
                }},
            },
        },
    },
}


def test_the_pod_monitor_validates_and_scrapes_every_grpc_pod_on_its_metrics_port():
    monitoring = build("monitoring")
    (monitor,) = of_kind(monitoring, "PodMonitor")
    jsonschema.validate(monitor, PODMONITOR_SCHEMA)
    assert monitor["metadata"]["namespace"] == "paymesh"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for overlay in OVERLAYS:
        settings = next(c["data"] for c in of_kind(render(overlay), "ConfigMap")
                        if c["metadata"]["name"].startswith("paymesh-config"))
        scraped = 0
        for workload in workloads(render(overlay)):
            template = workload["spec"]["template"]
            (container,) = template["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            if selector.items() <= template["metadata"]["labels"].items():
                scraped += 1
                assert ports[endpoint["port"]] == int(settings["PAYMESH_METRICS_PORT"])
                assert template["metadata"]["annotations"]["prometheus.io/path"] == endpoint["path"]
            else:
                assert "metrics" not in ports, workload["metadata"]["name"]  # a metrics port nobody scrapes
        assert scraped == 8, overlay  # three router bulkheads, three cores, the bridge, confirmations


def test_the_pod_monitor_schema_bites():
    (monitor,) = of_kind(build("monitoring"), "PodMonitor")
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    for broken in ({**endpoints[0], "interval": "30 seconds"}, {**endpoints[0], "targetPort": 9464},
                   {**endpoints[0], "port": 9464}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**monitor, "spec": {**monitor["spec"], "podMetricsEndpoints": [broken]}},
                                PODMONITOR_SCHEMA)
    without_selector = {k: v for k, v in monitor["spec"].items() if k != "selector"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**monitor, "spec": without_selector}, PODMONITOR_SCHEMA)
