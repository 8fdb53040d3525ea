"""The alert rules in k8s/monitoring: well formed, and on series the services really export."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "k8s" / "monitoring" / "alerts.yaml"
# Each series an alert reads, and where the code makes it (tests/payment_router/test_business_day.py scrapes them).
EXPORTED = {
    "paymesh_queue_depth": ("paymesh/telemetry.py", '"paymesh.queue.depth"'),
    "paymesh_outbox_refused_total": ("paymesh/telemetry.py", '"paymesh.outbox.refused"'),
    # tests/paymesh/test_certificate_rotation.py scrapes it
    "paymesh_tls_certificate_expiry_days": ("paymesh/telemetry.py", '"paymesh.tls.certificate.expiry"'),
}


def test_every_alert_is_well_formed_and_reads_an_exported_series():
    rule = yaml.safe_load(RULES.read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {a["alert"] for a in alerts} >= {"PaymeshOutboxRowRefused", "PaymeshCertificateExpiringSoon"}
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket") and alert["annotations"]["summary"]
        series = set(re.findall(r"\b(paymesh_[a-z_]+)\b", alert["expr"]))
        assert series and series <= set(EXPORTED), alert["expr"]
        for name in series:
            path, instrument = EXPORTED[name]
            assert instrument in (REPO / path).read_text(), name
    assert '"router.outbox.refused"' in (REPO / "payment_router" / "outbox.py").read_text()
