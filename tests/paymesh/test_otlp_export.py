"""OTLP/gRPC to the platform's collector, with the standard OTEL_* variables set as a platform sets
them: a real receiver on loopback (the opentelemetry-proto collector services, mTLS with a CA of the
platform's own, not the mesh's) gets one payment's spans from every hop in one trace, and the
services' metrics; an unusable protocol stops a service with a clear word; no variables, no export."""

import asyncio
import dataclasses
import os
import subprocess
import sys
import time

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bank.common.v1 import types_pb2
from paymesh import telemetry
from paymesh.config import ConfigurationError, Settings
from paymesh.topology import Identity
from paymesh_tools.dev_pki import CertificateAuthority
from tests.channel_calls import ENV, open_loans, order, submit
from tests.harness import posting_status, service_env, start_mesh, start_service, stop_mesh

HOPS = (("payment-router", "/bank.payments.v1.PaymentService/SubmitPayment"),
        ("core-cash", "core-cash apply payment"),
        ("mainframe-bridge", "mainframe-bridge queue posting"),
        ("confirmations", "confirmations log confirmation"))


class Collector:
    """What an OpenTelemetry Collector's otlp receiver keeps of what it was sent."""

    def __init__(self):
        self.spans: list[tuple[dict, Span]] = []  # (resource attributes, Span)
        self.metrics: list[tuple[dict, Metric]] = []  # (resource attributes, Metric)
        self.peers: set[str] = set()  # the client certificates' SANs the exports came with
        self.env: dict[str, str] = {}

    def heard_from(self, context) -> None:
        self.peers.update(value.decode() for value in context.auth_context().get("x509_subject_alternative_name", ()))

    def span(self, service: str, name: str) -> Span | None:
        return next((span for resource, span in self.spans
                     if resource["service.name"] == service and span.name == name), None)


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: Collector):
        self.collector = collector

    async def Export(self, request, context):  # noqa: N802 (the service definition's name)
        self.collector.heard_from(context)
        for resource_spans in request.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            self.collector.spans += [(resource, span) for scope in resource_spans.scope_spans for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, collector: Collector):
        self.collector = collector

    async def Export(self, request, context):  # noqa: N802
        self.collector.heard_from(context)
        for resource_metrics in request.resource_metrics:
            resource = attributes_of(resource_metrics.resource.attributes)
            self.collector.metrics += [(resource, metric) for scope in resource_metrics.scope_metrics
                                       for metric in scope.metrics]
        return metrics_service_pb2.ExportMetricsServiceResponse()


def attributes_of(key_values) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in key_values}


@pytest.fixture
async def collector(tmp_path):
    """A collector on loopback that requires a client certificate of the platform's CA."""
    platform = CertificateAuthority.create("platform telemetry CA")
    server_side = platform.issue(Identity("service", "otel-collector"), dns_names=("localhost",))
    client_side = platform.issue(Identity("service", "paymesh-telemetry"))
    files = {"ca": platform.cert_pem, "client.key": client_side.key, "client.crt": client_side.cert}
    for name, data in files.items():
        (tmp_path / f"otlp-{name}").write_bytes(data)
    collector = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceReceiver(collector), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsReceiver(collector), server)
    credentials = grpc.ssl_server_credentials([(server_side.key, server_side.cert)],
                                              root_certificates=platform.cert_pem, require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    collector.env = {
        # As an OpenTelemetry Operator's injection or a Deployment's env names them.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://localhost:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(tmp_path / "otlp-ca"),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(tmp_path / "otlp-client.key"),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(tmp_path / "otlp-client.crt"),
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,k8s.namespace.name=paymesh",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: the spans leave within the test, not after 5 s
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    yield collector
    await server.stop(0)


async def until(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return bool(condition())


async def test_one_payments_spans_from_every_hop_reach_the_collector_in_one_trace(tmp_path, pki_dir, collector):
    mesh = start_mesh(tmp_path, pki_dir, **ENV, **collector.env)
    try:
        payment = await submit(mesh, pki_dir, "app", order("otlp-1", open_loans(types_pb2.LOAN_TYPE_CASH)[3]))
        assert payment.status == types_pb2.PAYMENT_STATUS_APPLIED
        await posting_status(mesh["mainframe-bridge"].address, pki_dir, payment.payment_id)
        # Exported while the mesh runs (the batch processor's schedule), not only at its shutdown.
        assert await until(lambda: all(collector.span(*hop) for hop in HOPS)), \
            [hop for hop in HOPS if not collector.span(*hop)]
        assert await until(lambda: any(metric.name == "paymesh.payments" for _, metric in collector.metrics))
    finally:
        stop_mesh(mesh)
    route = collector.span(*HOPS[0])
    for service, name in HOPS[1:]:
        span = collector.span(service, name)
        assert span.trace_id == route.trace_id, f"{service} is in another trace"
        assert span.parent_span_id == route.span_id, f"{service}'s span is not a child of the router's"
    for resource, _ in collector.spans:
        assert (resource["k8s.namespace.name"], resource["deployment.environment.name"]) == ("paymesh", "test")
    assert collector.peers == {"spiffe://paymesh.bank/service/paymesh-telemetry"}  # mTLS, the platform's client cert
    # The router's payments counter, pushed beside /metrics: the one payment, on its channel and core.
    points = [point for resource, metric in collector.metrics if resource["service.name"] == "payment-router"
              and metric.name == "paymesh.payments" for point in metric.sum.data_points]
    assert {(attributes_of(p.attributes)["channel"], attributes_of(p.attributes)["core"], p.as_int)
            for p in points} == {("app", "core-cash", 1)}


def settings_with(**env) -> Settings:
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith(("OTEL_", "PAYMESH_TRACE"))]:
            del os.environ[name]
        os.environ.update(env)
        return Settings.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_standard_variables_decide_and_the_local_default_is_unchanged():
    assert (settings_with().trace_exporter, settings_with().otlp_metrics) == ("none", False)
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel-collector.monitoring:4317"}
    assert (settings_with(**endpoint).trace_exporter, settings_with(**endpoint).otlp_metrics) == ("otlp", True)
    only_traces = settings_with(**endpoint, OTEL_METRICS_EXPORTER="none")
    assert (only_traces.trace_exporter, only_traces.otlp_metrics) == ("otlp", False)
    assert settings_with(**endpoint, OTEL_TRACES_EXPORTER="none").trace_exporter == "none"
    assert settings_with(**endpoint, PAYMESH_TRACE_EXPORTER="file").trace_exporter == "file"  # ours, explicitly
    assert settings_with(OTEL_TRACES_EXPORTER="console,otlp").trace_exporter == "otlp"
    telemetry.check_otlp(settings_with(**endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"))
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/protobuf'"):
        telemetry.check_otlp(settings_with(**endpoint, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf"))
    with pytest.raises(ConfigurationError, match="PAYMESH_TRACE_EXPORTER='jaeger'"):
        telemetry.check_otlp(dataclasses.replace(settings_with(), trace_exporter="jaeger"))


def test_a_service_told_an_unusable_protocol_says_so_and_stops(tmp_path, pki_dir):
    env = service_env(tmp_path, pki_dir, PAYMESH_CORE_CASH_PORT="0",
                      OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    stopped = subprocess.run([sys.executable, "-m", "core_cash"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 2, stopped.stderr
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='http/protobuf'" in stopped.stderr and "Traceback" not in stopped.stderr


def test_the_resource_takes_the_platforms_name_and_attributes(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=payment-router-atm-0,service.name=ignored")
    local = telemetry.resource_of("payment-router").attributes
    assert (local["service.name"], local["k8s.pod.name"]) == ("payment-router", "payment-router-atm-0")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payment-router-atm")
    assert telemetry.resource_of("payment-router").attributes["service.name"] == "payment-router-atm"


def test_a_stop_with_the_collector_away_waits_for_it_no_longer_than_the_flush_allows(tmp_path, pki_dir):
    # Port 9 on loopback: nothing listens, every export is refused and retried (10 s by the SDK's default).
    service = start_service("core-cash", tmp_path, pki_dir, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    started = time.monotonic()
    assert service.terminate(timeout=30) == 0
    stopped = time.monotonic() - started
    assert stopped < telemetry.FLUSH_SECONDS + 1.5, f"{stopped:.1f} s from SIGTERM to exit"
    assert "telemetry not flushed in time" in service.log()
