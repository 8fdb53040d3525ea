"""The alert rules run by Prometheus's own promtool (Debian's prometheus package; .ci/run installs it):
`promtool check rules` on the PrometheusRule's groups, and `promtool test rules` with series for each
alert: it fires, with the labels Alertmanager routes on, where the figures are bad, and stays quiet for
the healthy series beside them."""

import shutil
import subprocess

import pytest
import yaml

from tests.k8s import promql

PAGE, TICKET = {"severity": "page"}, {"severity": "ticket"}
OPS, MAINFRAME = {"team": "payments-operations"}, {"team": "mainframe"}
CHANNELS, PLATFORM = {"team": "channel-integrations"}, {"team": "platform"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install --no-install-recommends prometheus (.ci/run does)"
    return found


def series(name: str, values: str, **labels) -> dict:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}" if text else name, "values": values}


def fires(alert: str, at: str, *labels: dict) -> dict:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": label} for label in labels]}


# (input series, alert checks) per scenario, each a promtool test case at one-minute steps.
SCENARIOS = {
    "the customers wait": ([
        # atm: 1 call in 100 under 100 ms (p99 between 100 and 250 ms); app: all of them under.
        series("paymesh_online_duration_seconds_bucket", "0+1x30", channel="atm", le="0.1"),
        series("paymesh_online_duration_seconds_bucket", "0+100x30", channel="atm", le="0.25"),
        series("paymesh_online_duration_seconds_bucket", "0+100x30", channel="atm", le="+Inf"),
        series("paymesh_online_duration_seconds_bucket", "0+100x30", channel="app", le="0.1"),
        series("paymesh_online_duration_seconds_bucket", "0+100x30", channel="app", le="+Inf"),
    ], [fires("PaymeshOnlineLatencyHigh", "8m"),  # not yet: 10 minutes over first
        fires("PaymeshOnlineLatencyHigh", "20m", {"channel": "atm", **PAGE, **OPS})]),
    "a core, the mainframe link": ([
        series("paymesh_peer_up", "0x30", peer="core-cash", pod="payment-router-atm-0"),
        series("paymesh_peer_up", "0x30", peer="core-cash", pod="payment-router-digital-0"),
        series("paymesh_peer_up", "0x30", peer="core-vehicle", pod="payment-router-atm-0"),
        series("paymesh_peer_up", "1x30", peer="core-vehicle", pod="payment-router-digital-0"),  # one router has it
        series("paymesh_mainframe_link_up", "0x30", pod="mainframe-bridge-0"),
    ], [fires("PaymeshCoreDown", "10m", {"peer": "core-cash", **PAGE, **OPS}),
        fires("PaymeshMainframeLinkDown", "3m"),
        fires("PaymeshMainframeLinkDown", "10m", {**PAGE, **MAINFRAME})]),
    "queues that do not drain": ([
        series("paymesh_bridge_oldest_age_seconds", "0+60x30", pod="mainframe-bridge-0"),
        series("paymesh_outbox_oldest_age_seconds", "0+60x30", peer="mainframe-bridge", topic="posting",
               pod="payment-router-atm-0"),
        series("paymesh_outbox_oldest_age_seconds", "0x30", peer="confirmations", topic="confirmation",
               pod="payment-router-atm-0"),
        series("paymesh_confirmations_consumer_lag", "20000x30", channel="atm", consumer="books"),
        series("paymesh_confirmations_consumer_lag", "5x30", channel="atm", consumer="fast"),
    ], [fires("PaymeshBridgeQueueStuck", "12m"),  # over 10 minutes old from 11, and 5 more
        fires("PaymeshBridgeQueueStuck", "20m", {**PAGE, **MAINFRAME}),
        fires("PaymeshOutboxStuck", "20m", {"peer": "mainframe-bridge", "topic": "posting", **PAGE, **OPS}),
        fires("PaymeshConsumerLagging", "20m", {"channel": "atm", "consumer": "books", **TICKET, **CHANNELS})]),
    "peers refusing": ([
        series("paymesh_mainframe_answers_total", "0 0 0 1 1 1 1 1 1 1", outcome="rejected", reason="UNKNOWN_ACCOUNT"),
        series("paymesh_mainframe_answers_total", "0+100x9", outcome="posted", reason=""),
        series("paymesh_outbox_refused_total", "0 0 2 2 2 2 2 2 2 2", topic="posting",
               reason="ERROR_REASON_IDEMPOTENCY_KEY_REUSED"),
        series("paymesh_queue_depth", "0 0 2 2 2 2 2 2 2 2", queue="router.outbox.refused", pod="payment-router-atm-0"),
        series("paymesh_webhook_deliveries_total", "0 0 4 4 4 4 4 4 4 4", channel="store", outcome="dead_lettered"),
        series("paymesh_webhook_deliveries_total", "0+9x9", channel="app", outcome="delivered"),
        series("paymesh_webhook_deliveries_total", "0+3x9", channel="app", outcome="failed"),  # retried, not lost
    ], [fires("PaymeshMainframeRejecting", "5m", {"reason": "UNKNOWN_ACCOUNT", **PAGE, **MAINFRAME}),
        fires("PaymeshOutboxRefusing", "5m", {"topic": "posting", "reason": "ERROR_REASON_IDEMPOTENCY_KEY_REUSED",
                                              **TICKET, **OPS}),
        fires("PaymeshOutboxRowRefused", "5m", {"pod": "payment-router-atm-0", **PAGE, **OPS}),
        fires("PaymeshWebhooksDeadLettered", "5m", {"channel": "store", **TICKET, **CHANNELS})]),
    "the day not closed": ([
        # promtool's clock starts at 0: a cut-off at 0 is 5 hours ago at 5h.
        series("paymesh_business_day_cutoff_timestamp_seconds", "0x400", pod="mainframe-bridge-0"),
        series("paymesh_business_day_state", "1x400", state="open", pod="mainframe-bridge-0"),
        series("paymesh_business_day_state", "0x400", state="closed", pod="mainframe-bridge-0"),
    ], [fires("PaymeshBusinessDayNotClosed", "3h"), fires("PaymeshBusinessDayNotClosed", "5h", {**PAGE, **OPS})]),
    "the day closed": ([
        series("paymesh_business_day_cutoff_timestamp_seconds", "0x400", pod="mainframe-bridge-0"),
        series("paymesh_business_day_state", "0x400", state="open", pod="mainframe-bridge-0"),
        series("paymesh_business_day_state", "1x400", state="closed", pod="mainframe-bridge-0"),
    ], [fires("PaymeshBusinessDayNotClosed", "5h")]),
    "a certificate running out": ([
        series("paymesh_tls_certificate_expiry_days", "5x30", pod="core-cash-0", certificate="service/core-cash"),
        series("paymesh_tls_certificate_expiry_days", "60x30", pod="core-cash-0", certificate="ca"),
    ], [fires("PaymeshCertificateExpiringSoon", "20m",
              {"pod": "core-cash-0", "certificate": "service/core-cash", **TICKET, **PLATFORM}),
        fires("PaymeshCertificateExpiring", "20m",
              {"pod": "core-cash-0", "certificate": "service/core-cash", **PAGE, **PLATFORM})]),
}


def rule_file() -> dict:
    """The PrometheusRule's groups as a plain rule file, annotations left out (their templates are
    checked by `promtool check rules`; the tests compare labels)."""
    groups = yaml.safe_load(promql.RULES.read_text())["spec"]["groups"]
    return {"groups": [{**group, "rules": [{k: v for k, v in rule.items() if k != "annotations"}
                                           for rule in group["rules"]]} for group in groups]}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)


def test_the_rules_pass_promtools_check(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": yaml.safe_load(promql.RULES.read_text())["spec"]["groups"]}))
    checked = run("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(promql.alerts())} rules found" in checked.stdout


def test_each_alert_fires_on_bad_figures_and_not_on_healthy_ones(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_file()))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [
        {"name": name, "interval": "1m", "input_series": inputs, "alert_rule_test": checks}
        for name, (inputs, checks) in SCENARIOS.items()]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    tested = run("test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tested_alerts = {check["alertname"] for _, checks in SCENARIOS.values() for check in checks
                     if check["exp_alerts"]}
    assert tested_alerts == {rule["alert"] for rule in promql.alerts()}, "an alert no scenario makes fire"


def test_the_rule_tests_bite(tmp_path):
    """An alert expected where the figures are healthy fails promtool's test."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_file()))
    inputs, _ = SCENARIOS["the day closed"]
    wrong = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": inputs,
        "alert_rule_test": [fires("PaymeshBusinessDayNotClosed", "5h", {**PAGE, **OPS})]}]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(wrong))
    assert run("test", "rules", str(tmp_path / "tests.yaml")).returncode != 0


@pytest.fixture(autouse=True)
def _promtool_present():
    promtool()
