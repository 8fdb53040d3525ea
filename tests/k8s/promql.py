"""PromQL of the dashboard and the alert rules, parsed (promql-parser: the Rust promql-parser crate that
GreptimeDB uses, the Prometheus grammar), the series each expression reads, and the series the services
really export: a real scrape of a process whose every instrument has been touched once."""

import functools
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "k8s" / "monitoring" / "alerts.yaml"
DASHBOARD = REPO / "k8s" / "components" / "grafana-dashboard" / "paymesh-day.json"
OBSERVABILITY = REPO / "docs" / "observability.md"
# Grafana's own variables, as its query editor replaces them before Prometheus sees the query.
GRAFANA_VARIABLES = {"$__range": "1d", "$__rate_interval": "1m", "$__interval": "30s"}
# Series Prometheus makes itself: time() is a function; these may be named without a service exporting them.
PROMETHEUS_OWN: set[str] = set()


def alerts() -> list[dict]:
    rule = yaml.safe_load(RULES.read_text())
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel, Grafana's variables replaced."""
    found = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def series_read(expr: str) -> set[str]:
    """The metric names an expression selects; raises ValueError when it does not parse."""
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# Touches every instrument paymesh.telemetry defines (counters, histograms, the sampled gauges, the
# queue and certificate gauges) once in a fresh process with the /metrics port on, then prints its port.
_EXPORTER = r"""
import dataclasses, sys, time
from paymesh import telemetry
from paymesh.config import Settings
setup = telemetry.setup_metrics("metrics-names", dataclasses.replace(Settings.from_env(), metrics_port=0))
instruments = telemetry._instruments()
for name, instrument in vars(instruments).items():
    if hasattr(instrument, "add"):
        instrument.add(1, {"label": "x"})
    elif hasattr(instrument, "record"):
        instrument.record(0.01, {"label": "x"})
for gauge in telemetry.GAUGES:
    telemetry.observe(gauge, "names", lambda: [(1, {"label": "x"})])
telemetry.observe_queue_depth("names", lambda: 1)
telemetry.observe_certificate_expiry("names", lambda: {"ca": 1.0})
print(setup.port, flush=True)
sys.stdin.read()
"""


@functools.cache
def exported() -> dict[str, set[str]]:
    """Family name -> its sample names (name_total, name_bucket...), from a real scrape."""
    process = subprocess.Popen([sys.executable, "-c", _EXPORTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=REPO)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    finally:
        process.kill()
        process.wait()
    return {family.name: {sample.name for sample in family.samples}
            for family in text_string_to_metric_families(text)}


def exported_series() -> set[str]:
    return {name for samples in exported().values() for name in samples} | PROMETHEUS_OWN


def documented_metrics() -> set[str]:
    """The first column of the metrics table in docs/observability.md ("What is measured")."""
    table = OBSERVABILITY.read_text().split("### What is measured", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))


def queryable_names() -> set[str]:
    """Each exported metric as one queries it and as the docs table names it: a counter by its _total
    sample, a histogram by its family (its _bucket, _count and _sum follow), a gauge by itself."""
    names = set()
    for family, samples in exported().items():
        names |= {f"{family}_total"} if samples == {f"{family}_total"} else {family}
    return names
