"""OpenTelemetry: one tracer provider per process, trace context carried in gRPC
metadata by the instrumentation's interceptors, so one payment is one trace."""

import json

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from paymesh.config import Settings


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line (for tests and offline reading)."""

    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def export(self, spans):
        for span in spans:
            self._file.write(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self._file.close()


def setup_tracing(service_name: str, settings: Settings) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if settings.trace_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif settings.trace_exporter == "file":
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(settings.trace_file)))
    trace.set_tracer_provider(provider)
    return provider


def server_interceptors() -> list:
    return [aio_server_interceptor()]


def client_interceptors() -> list:
    return aio_client_interceptors()
