"""One trace across processes: the client's span context travels in gRPC metadata
and becomes the server span's parent; JSON logs carry the trace id."""

import io
import json
import logging

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


async def test_server_span_is_a_child_of_the_callers_span(settings):
    exporter.clear()
    # Any server will do: the health service goes through the same interceptors as the domain's.
    running = await start_server("payment-router", settings, Handlers(lambda server: []), CallerPolicy.only([]))
    try:
        channel = tls.channel_for(f"127.0.0.1:{running.port}", settings.pki_dir, Identity("channel", "app"),
                                  interceptors=telemetry.client_interceptors())
        async with channel:
            with trace.get_tracer("test").start_as_current_span("channel-request") as parent:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await running.stop(0)
    spans = exporter.get_finished_spans()
    server_span = next(s for s in spans if s.kind == trace.SpanKind.SERVER)
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
