"""Metrics for Prometheus: a real service process serves /metrics on the opt-in
PAYMESH_METRICS_PORT with the figures of the calls it handled; the payment,
hop-latency and queue-depth API shows up in a real scrape; no port by default."""


import grpc
import pytest

from bank.loans.v1 import loan_core_service_pb2
from paymesh import telemetry, tls
from paymesh_tools.probe import grpc_health
from paymesh.topology import Identity
from tests.harness import start_service, scrape, sample_value


async def test_a_service_serves_its_rpc_figures_on_the_opt_in_metrics_port(tmp_path, settings):
    service = start_service("core-cash", tmp_path, settings.pki_dir, PAYMESH_METRICS_PORT="0")
    try:
        for _ in range(4):
            assert await grpc_health(service.address, settings) == "SERVING"
        method = loan_core_service_pb2.DESCRIPTOR.services_by_name["LoanCoreService"].methods[0].name
        async with tls.channel_for(service.address, settings.pki_dir, Identity("channel", "atm")) as channel:
            call = channel.unary_unary(f"/bank.loans.v1.LoanCoreService/{method}")
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call(b"", timeout=5)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        metrics_port = int((tmp_path / "run" / "core-cash-metrics.port").read_text())
        families = scrape(metrics_port)
    finally:
        service.terminate()
        service.kill()
    samples = families["rpc_server_duration_seconds"]
    checks = dict(rpc_service="grpc.health.v1.Health", rpc_method="Check", rpc_grpc_status_code="OK")
    assert sample_value(samples, "rpc_server_duration_seconds_count", **checks) == 4
    assert sample_value(samples, "rpc_server_duration_seconds_sum", **checks) > 0
    assert sample_value(samples, "rpc_server_duration_seconds_count", rpc_method=method,
                        rpc_grpc_status_code="PERMISSION_DENIED") == 1
    target = families["target_info"][0]  # which service these figures are from
    assert target.labels["service_name"] == "core-cash"


def test_a_service_has_no_metrics_port_by_default(tmp_path, settings):
    service = start_service("core-cash", tmp_path, settings.pki_dir)
    try:
        assert not (tmp_path / "run" / "core-cash-metrics.port").exists()
    finally:
        assert service.terminate() == 0
    assert '"metrics_port": null' in service.log()
    assert '"health_port": null' in service.log()


def test_payments_hops_and_queue_depths_reach_the_scrape(metrics_setup):
    for _ in range(3):
        telemetry.count_payment("atm", "core-cash", "APPLIED")
    telemetry.count_payment("app", "core-mortgage", "REJECTED")
    for seconds in (0.02, 0.02, 3.0):
        telemetry.record_hop_latency("router->core-cash", seconds)
    backlog = ["posting"] * 7
    telemetry.observe_queue_depth("bridge.store-and-forward", lambda: len(backlog))

    families = scrape(metrics_setup.port)
    payments = families["paymesh_payments"]
    assert sample_value(payments, "paymesh_payments_total", channel="atm", core="core-cash", status="APPLIED") == 3
    assert sample_value(payments, "paymesh_payments_total", channel="app", core="core-mortgage",
                        status="REJECTED") == 1
    hops = families["paymesh_hop_duration_seconds"]
    hop = dict(hop="router->core-cash", status="OK")
    assert sample_value(hops, "paymesh_hop_duration_seconds_count", **hop) == 3
    assert sample_value(hops, "paymesh_hop_duration_seconds_bucket", le="0.025", **hop) == 2
    assert sample_value(hops, "paymesh_hop_duration_seconds_sum", **hop) == pytest.approx(3.04)
    depth = families["paymesh_queue_depth"]
    assert sample_value(depth, "paymesh_queue_depth", queue="bridge.store-and-forward") == 7

    del backlog[4:]  # the gauge is read at each scrape, not remembered
    depth = scrape(metrics_setup.port)["paymesh_queue_depth"]
    assert sample_value(depth, "paymesh_queue_depth", queue="bridge.store-and-forward") == 4


def test_a_failing_queue_gauge_does_not_break_the_scrape(metrics_setup):
    telemetry.observe_queue_depth("confirmations.lag.broken", lambda: 1 // 0)
    telemetry.observe_queue_depth("confirmations.lag.atm", lambda: 12)
    depth = scrape(metrics_setup.port)["paymesh_queue_depth"]
    assert sample_value(depth, "paymesh_queue_depth", queue="confirmations.lag.atm") == 12
    assert sample_value(depth, "paymesh_queue_depth", queue="confirmations.lag.broken") is None
