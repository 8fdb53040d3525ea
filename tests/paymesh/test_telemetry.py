"""One trace across processes: the client's span context travels in gRPC metadata
and becomes the server span's parent; JSON logs carry the trace id."""

import io
import json
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paymesh import telemetry, tls
from paymesh.authz import CallerPolicy
from paymesh.logs import setup_logging
from paymesh.server import Handlers, start_server
from paymesh.topology import Identity

exporter = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider():
    # The global provider can be set once per process; this module owns it in tests.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


async def answer(request: bytes, context) -> bytes:
    return b"ok"


def add_echo(server) -> list[str]:
    """A domain-like method (health is not traced: probes would fill the traces)."""
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Echo", {"Get": grpc.unary_unary_rpc_method_handler(answer)})])
    return ["test.Echo"]


async def test_server_span_is_a_child_of_the_callers_span(settings):
    exporter.clear()
    app = Identity("channel", "app")
    running = await start_server("payment-router", settings, Handlers(add_echo), CallerPolicy.only([app]))
    try:
        channel = tls.channel_for(f"127.0.0.1:{running.port}", settings.pki_dir, app,
                                  interceptors=telemetry.client_interceptors())
        async with channel:
            with trace.get_tracer("test").start_as_current_span("channel-request") as parent:
                assert await channel.unary_unary("/test.Echo/Get")(b"", timeout=5) == b"ok"
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await running.stop(0)
    spans = exporter.get_finished_spans()
    server_spans = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert [s.name for s in server_spans] == ["/test.Echo/Get"], "one server span: the health check has none"
    server_span = server_spans[0]
    assert server_span.context.trace_id == parent.get_span_context().trace_id
    ancestors = {s.context.span_id: s.parent.span_id if s.parent else None for s in spans}
    span_id, chain = server_span.context.span_id, []
    while span_id is not None:
        chain.append(span_id)
        span_id = ancestors.get(span_id)
    assert parent.get_span_context().span_id in chain


def test_json_logs_carry_the_trace_id():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("test-service")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    try:
        with trace.get_tracer("test").start_as_current_span("work") as span:
            logging.getLogger("paymesh.test").info("applied", extra={"payment_id": "p-1"})
    finally:
        root.handlers[:], root.level = saved
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert (line["message"], line["service"], line["payment_id"]) == ("applied", "test-service", "p-1")
