"""OpenTelemetry: one tracer provider per process, trace context carried in gRPC
metadata by the instrumentation's interceptors, so one payment is one trace; and
metrics (payments, latency per hop and per RPC, queue depths, the operator's figures)
for Prometheus, and both over OTLP/gRPC to a collector when the OTEL_* variables say so."""

import asyncio
import functools
import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from wsgiref.simple_server import WSGIServer

import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import format_trace_id
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from prometheus_client import CollectorRegistry, start_http_server

from paymesh.config import ConfigurationError, Settings

log = logging.getLogger(__name__)


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line (for tests and offline reading)."""

    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (held for the exporter's life; shutdown() closes it)

    def export(self, spans):
        for span in spans:
            self._file.write(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self._file.close()


TRACE_EXPORTERS = ("none", "console", "file", "otlp")


def resource_of(service_name: str) -> Resource:
    """The process's resource: OTEL_RESOURCE_ATTRIBUTES (the platform's: cluster, namespace, pod...)
    and service.name, OTEL_SERVICE_NAME's when the platform sets one, else the mesh's name."""
    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name})


def check_otlp(settings: Settings) -> None:
    """The OTLP settings this build can honour, or a ConfigurationError that says what to set."""
    if settings.trace_exporter not in TRACE_EXPORTERS:
        raise ConfigurationError(f"PAYMESH_TRACE_EXPORTER={settings.trace_exporter!r}: "
                                 f"use one of {', '.join(TRACE_EXPORTERS)}")
    if settings.trace_exporter != "otlp" and not settings.otlp_metrics:
        return
    for variable, protocol in settings.otlp_protocols:
        if protocol != "grpc":  # the SDK's HTTP exporters are not installed: exporting nothing would be silent
            raise ConfigurationError(f"{variable}={protocol!r}: paymesh exports OTLP over gRPC only; set it to "
                                     "grpc and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's gRPC port (4317)")


def setup_tracing(service_name: str, settings: Settings) -> TracerProvider:
    # With no exporter nobody reads a span: spans are not recorded (they cost CPU on every
    # payment), yet trace ids still reach the logs and the next hop. OTEL_TRACES_SAMPLER,
    # when set, decides instead, as the SDK documents.
    check_otlp(settings)
    sampler = None
    if settings.trace_exporter == "none" and not os.environ.get("OTEL_TRACES_SAMPLER"):
        sampler = ParentBased(ALWAYS_OFF)
    provider = TracerProvider(resource=resource_of(service_name), sampler=sampler)
    if settings.trace_exporter == "otlp":
        # The SDK's exporter reads the endpoint, TLS files, headers, compression and timeout from the
        # standard OTEL_EXPORTER_OTLP_* variables itself; spans wait in the batch processor's queue
        # (2,048, then dropped and counted by the SDK), never in a payment's path.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif settings.trace_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif settings.trace_exporter == "file":
        # One file per process ("{service}" in the path), so processes never interleave lines.
        path = settings.trace_file.with_name(settings.trace_file.name.replace("{service}", service_name))
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path)))
    trace.set_tracer_provider(provider)
    return provider


# At a stop, what telemetry may still take: the pod's grace keeps 5 s after the service's own for
# closing stores and this (k8s/components/hardened-pod). The SDK's exporters retry an absent
# collector for up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s) each; measured, a stop took 7.7 s longer.
FLUSH_SECONDS = 3.0


def shutdown_within(seconds: float, *shutdowns: Callable[[], object]) -> bool:
    """Runs the providers' shutdowns (their last flush) side by side, waiting at most seconds in all;
    whether they finished. What did not leave by then is dropped: spans and figures, never a payment."""
    threads = [threading.Thread(target=shutdown, name="telemetry-shutdown", daemon=True) for shutdown in shutdowns]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    finished = not any(thread.is_alive() for thread in threads)
    if not finished:
        log.warning("telemetry not flushed in time: the collector did not take the last spans and figures",
                    extra={"seconds": seconds})
    return finished


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" outside any trace), to send along
    with one item on a long-lived stream whose metadata belongs to no single payment."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


# One proxy for every item span: it follows the provider setup_tracing installs, and
# get_tracer builds a new tracer on each call (a third of an item span's cost).
_ITEM_TRACER = trace.get_tracer("paymesh")


def record_item_span(name: str, traceparent: str, start_ns: int, attributes: dict) -> None:
    """A finished span for one item of a stream message, a child of the item's own trace."""
    if not traceparent:
        return
    parent = propagate.extract({"traceparent": traceparent})
    _ITEM_TRACER.start_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes, start_time=start_ns).end()


def server_interceptors() -> list:
    # Health is not traced: probes ask every few seconds (noise), and the tracing interceptor takes every
    # streaming handler for an async generator, so grpc-health's Watch (which writes with context.write)
    # answered UNKNOWN ("'async for' requires an object with __aiter__ method, got coroutine").
    return [aio_server_interceptor(filter_=filters.negate(filters.health_check())), RpcMetrics()]


def client_interceptors() -> list:
    return aio_client_interceptors()


# --- Metrics -----------------------------------------------------------------
# Instruments are made on the global meter, which forwards to the provider that
# setup_metrics installs (once per process); before that, or when a process never
# calls it, recording is a cheap no-op. So a colleague may create instruments at
# import time and call count_payment & co. from anywhere.

# Seconds; from a cache hit (1 ms) to a slow mainframe round trip (10 s).
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class MetricsSetup:
    provider: MeterProvider
    port: int | None  # where /metrics is served; None when PAYMESH_METRICS_PORT is unset
    _http: WSGIServer | None = None

    def shutdown(self) -> None:
        global _metrics_read
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.provider.shutdown()
        # Nobody reads the figures any more: the services in this process stop sampling their stores.
        _metrics_read = False


def setup_metrics(service_name: str, settings: Settings) -> MetricsSetup:
    """The process's meter provider; with settings.metrics_port set, also a plaintext HTTP /metrics
    for Prometheus (opt-in, like the health port: it carries no payment data, only aggregates)."""
    readers: list[MetricReader] = []
    registry = None
    if settings.metrics_port is not None:
        registry = CollectorRegistry()  # our own, so nothing else in the process leaks into /metrics
        readers.append(PrometheusMetricReader(registry=registry))
    if settings.otlp_metrics:
        # Pushed every OTEL_METRIC_EXPORT_INTERVAL (60 s unless set), cumulative, beside the scrape.
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    latency_view = View(
        instrument_type=Histogram, aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_SECONDS)
    )
    provider = MeterProvider(
        resource=resource_of(service_name), metric_readers=readers, views=[latency_view]
    )
    metrics.set_meter_provider(provider)
    global _metrics_read, _sample_seconds
    _metrics_read, _sample_seconds = bool(readers), settings.metrics_sample_seconds
    if registry is None or settings.metrics_port is None:  # the registry is made exactly when there is a port
        return MetricsSetup(provider, None)
    http, _thread = start_http_server(settings.metrics_port, addr=settings.bind_host, registry=registry)
    return MetricsSetup(provider, http.server_port, http)


def meter() -> metrics.Meter:
    """The paymesh meter, for instruments of a service's own."""
    return metrics.get_meter("paymesh")


@functools.cache
def _instruments():
    m = meter()
    return SimpleNamespace(
        payments=m.create_counter(
            "paymesh.payments", unit="{payment}", description="Payments by channel, core and final status"
        ),
        hop_latency=m.create_histogram(
            "paymesh.hop.duration", unit="s", description="Time of one hop of a payment (caller -> callee)"
        ),
        rpc_latency=m.create_histogram(
            "rpc.server.duration", unit="s", description="Time to handle one gRPC call, by method and status"
        ),
        refused_deliveries=m.create_counter(
            "paymesh.outbox.refused", unit="{row}",
            description="Outbox rows a peer refused, kept for the operator, by topic and reason",
        ),
        quota_refusals=m.create_counter(
            "paymesh.quota.refused", unit="{call}",
            description="Calls refused because the caller held as many open ones of the kind as it may",
        ),
        queue_depth=m.create_observable_gauge(
            "paymesh.queue.depth", callbacks=[_observe_queues], unit="{item}",
            description="Items waiting in a durable queue (bridge store-and-forward, confirmation consumer lag)",
        ),
        refusals=m.create_counter(
            "paymesh.refusals", unit="{payment}",
            description="Payment orders refused, by channel, reason and who refused (the router, or a core)",
        ),
        online_latency=m.create_histogram(
            "paymesh.online.duration", unit="s",
            description="Time of a channel's online SubmitPayment call, from its arrival to its answer",
        ),
        webhook_deliveries=m.create_counter(
            "paymesh.webhook.deliveries", unit="{delivery}",
            description="Webhook delivery attempts by channel and outcome (delivered, failed: retried, dead_lettered)",
        ),
        mainframe_answers=m.create_counter(
            "paymesh.mainframe.answers", unit="{posting}",
            description="The mainframe's answers to postings, by outcome (posted, rejected) and reason",
        ),
        late_postings=m.create_counter(
            "paymesh.late.postings", unit="{posting}",
            description="Postings of a sealed business day booked in the next open day (late items)",
        ),
        gauges=[m.create_observable_gauge(name, callbacks=[functools.partial(_observe_sampled, name)], unit=unit,
                                          description=description) for name, (unit, description) in GAUGES.items()],
        # Unit "d": Prometheus names it paymesh_tls_certificate_expiry_days.
        certificate_expiry=m.create_observable_gauge(
            "paymesh.tls.certificate.expiry", callbacks=[_observe_certificates], unit="d",
            description="Days until a certificate the process presents or trusts (its own, the CA) expires, "
                        "as last read from its files",
        ),
    )


def count_payment(channel: str, core: str, status: str) -> None:
    """One payment reached a final status (e.g. APPLIED, REJECTED, DUPLICATE) on a channel and core."""
    _instruments().payments.add(1, {"channel": channel, "core": core, "status": status})


def count_refused_delivery(topic: str, reason: str) -> None:
    """A peer refused an outbox row (topic "posting" or "confirmation"); it waits for the operator."""
    _instruments().refused_deliveries.add(1, {"topic": topic, "reason": reason})


def count_quota_refusal(kind: str) -> None:
    """A call refused over its caller's limit of open calls of this kind (StreamPayments, Subscribe...)."""
    _instruments().quota_refusals.add(1, {"kind": kind})


def count_refusal(channel: str, reason: str, refused_by: str) -> None:
    """A payment order refused (reason as paymesh.errors.reason_name gives it) by the router or a core."""
    _instruments().refusals.add(1, {"channel": channel, "reason": reason, "refused_by": refused_by})


def record_online_payment(channel: str, seconds: float) -> None:
    """The whole time of one online SubmitPayment call on the channel, whatever its answer."""
    _instruments().online_latency.record(seconds, {"channel": channel})


def count_webhook_deliveries(channel: str, outcome: str, count: int = 1) -> None:
    """Webhook deliveries of the channel that were delivered, failed (retried later) or dead_lettered."""
    _instruments().webhook_deliveries.add(count, {"channel": channel, "outcome": outcome})


def count_mainframe_answers(outcome: str, reason: str, count: int) -> None:
    """Postings the mainframe posted or rejected (reason: the ErrorReason's name; "" when posted)."""
    _instruments().mainframe_answers.add(count, {"outcome": outcome, "reason": reason})


def count_late_postings(count: int) -> None:
    """Postings of a sealed day just booked in the next open day."""
    _instruments().late_postings.add(count)


def record_hop_latency(hop: str, seconds: float, status: str = "OK") -> None:
    """How long one hop of a payment took, e.g. hop="router->core-cash"."""
    _instruments().hop_latency.record(seconds, {"hop": hop, "status": status})


# --- Sampled gauges: figures a service reads from its own store on its own loop ---------------
# The Prometheus scrape (and the OTLP reader) run on threads of their own and must not touch a store,
# so a service refreshes its figures every PAYMESH_METRICS_SAMPLE_SECONDS with sample_forever() and a
# gauge's callback only reads what the last refresh left (observe()).

GAUGES = {  # name -> (unit, description); the Prometheus names are in docs/observability.md
    "paymesh.outbox.depth": (
        "{row}", "Router outbox rows not yet acknowledged by their peer (refused rows excluded), by peer and topic"),
    "paymesh.outbox.oldest.age": (
        "s", "Age of the oldest unacknowledged router outbox row, by peer and topic (0 when empty)"),
    "paymesh.bridge.queued": ("{posting}", "Postings queued at the bridge that the mainframe has not answered"),
    "paymesh.bridge.oldest.age": ("s", "Age of the oldest posting queued at the bridge (0 when none)"),
    "paymesh.mainframe.link.up": ("1", "1 while the bridge's link to the mainframe is open, else 0"),
    "paymesh.peer.up": (
        "1", "1 while the router's stream to the peer (a core, the bridge, confirmations) is connected"),
    "paymesh.confirmations.consumer.lag": (
        "{confirmation}", "Confirmations of a channel after its durable consumer's acknowledged position"),
    "paymesh.business_day.state": (
        "1", "1 for the state (open, closing, closed) of the business day the operator closes next"),
    "paymesh.business_day.cutoff.timestamp": (
        "s", "Unix time of the cut-off of the business day the operator closes next"),
}
Sample = tuple[float, dict[str, str]]  # (value, labels)
_sampled: dict[str, dict[str, Callable[[], Iterable[Sample]]]] = {name: {} for name in GAUGES}
_metrics_read = False  # whether any reader (a /metrics port, OTLP) reads the instruments
_sample_seconds = 5.0


def metrics_read() -> bool:
    """Whether this process's metrics go anywhere: a service samples its stores only then."""
    return _metrics_read


def observe(gauge: str, owner: str, read: Callable[[], Iterable[Sample]]) -> None:
    """Registers read() (in memory only: it runs on the exporter's thread) as owner's samples of one of
    GAUGES; the latest registered per owner."""
    _sampled[gauge][owner] = read
    _instruments()


def _observe_sampled(gauge: str, _options) -> Iterator[Observation]:
    for read in list(_sampled[gauge].values()):
        try:
            for value, labels in read():
                yield Observation(value, labels)
        except Exception:  # a broken gauge must not break the scrape of every other metric
            log.exception("gauge callback failed", extra={"gauge": gauge})


async def sample_forever(name: str, refresh: Callable[[], Awaitable[None]]) -> None:
    """Runs refresh() (a service's read of its own figures) now and every PAYMESH_METRICS_SAMPLE_SECONDS,
    until cancelled; a failed read is logged and tried again next time."""
    while True:
        try:
            await refresh()
        except Exception:
            log.exception("metrics sample failed", extra={"sample": name})
        await asyncio.sleep(_sample_seconds)


class Figures:
    """The last sample of a service's figures, written on its loop and read on the exporter's thread
    (each gauge's list is replaced whole, never changed in place: the reader sees one sample or the next)."""

    def __init__(self, owner: str):
        self.owner = owner
        self._samples: dict[str, Sequence[Sample]] = {}

    def set(self, gauge: str, samples: Sequence[Sample]) -> None:
        known = gauge in self._samples
        self._samples[gauge] = samples
        if not known:
            observe(gauge, self.owner, lambda: self._samples[gauge])


_queues: dict[str, Callable[[], int]] = {}


def observe_queue_depth(queue: str, depth: Callable[[], int]) -> None:
    """Registers depth() (cheap, thread-safe: it runs on the exporter's thread at each scrape) as the
    current size of the named queue, e.g. "bridge.store-and-forward" or "confirmations.lag.<consumer>"."""
    _queues[queue] = depth
    _instruments()  # the gauge exists from now on


def _observe_queues(_options) -> Iterator[Observation]:
    for queue, depth in list(_queues.items()):
        try:
            yield Observation(int(depth()), {"queue": queue})
        except Exception:  # a broken gauge must not break the scrape of every other metric
            log.exception("queue depth callback failed", extra={"queue": queue})


_certificates: dict[str, Callable[[], dict[str, float]]] = {}


def observe_certificate_expiry(owner: str, expiry_days: Callable[[], dict[str, float]]) -> None:
    """Registers expiry_days() ({certificate label: days to expiry}, read at each scrape on the
    exporter's thread) for paymesh_tls_certificate_expiry_days{certificate=...}; one per owner
    (the identity a server presents), the latest registered."""
    _certificates[owner] = expiry_days
    _instruments()


def _observe_certificates(_options) -> Iterator[Observation]:
    for expiry_days in list(_certificates.values()):
        try:
            for certificate, days in expiry_days().items():
                yield Observation(round(days, 3), {"certificate": certificate})
        except Exception:  # an unreadable file must not break the scrape of every other metric
            log.exception("certificate expiry callback failed")


class RpcMetrics(grpc.aio.ServerInterceptor):
    """rpc.server.duration for every call the server handles, by service, method and status code; and
    the one place an unexpected exception becomes INTERNAL with the mesh's own words (its text, which
    can name hosts, files or values, goes to the log with the trace id, never to the caller)."""

    def __init__(self):
        self._timed: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # per method

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        # The timed handler is built once per method, not on every call.
        known = self._timed.get(details.method)
        if known is None or known[0] is not handler:
            known = self._timed[details.method] = handler, _timed_handler(handler, details.method)
        return known[1]


def _timed_handler(handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
    service, _, method = full_method.lstrip("/").rpartition("/")
    attributes = {"rpc.service": service, "rpc.method": method}
    kind = next(k for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                if getattr(handler, k) is not None)
    return getattr(grpc, f"{kind}_rpc_method_handler")(
        _timed(getattr(handler, kind), attributes), request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _timed(behavior, attributes: dict):
    if inspect.isasyncgenfunction(behavior):  # streaming responses yielded
        async def timed_stream(request, context):
            started, error = time.perf_counter(), None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                await _internal_error_if_unexpected(context, attributes, raised)
                raise
            finally:
                _record_rpc(started, context, attributes, error)
        return timed_stream

    async def timed_call(request, context):  # unary, or streaming through context.write
        started, error = time.perf_counter(), None
        try:
            return await behavior(request, context)
        except BaseException as raised:
            error = raised
            await _internal_error_if_unexpected(context, attributes, raised)
            raise
        finally:
            _record_rpc(started, context, attributes, error)
    return timed_call


async def _internal_error_if_unexpected(context, attributes: dict, error: BaseException) -> None:
    """An abort, a cancellation or an exit passes as it is; any other exception ends the call
    INTERNAL in the mesh's words (context.abort raises)."""
    if not isinstance(error, Exception) or isinstance(error, grpc.aio.AbortError):
        return
    trace_id = format_trace_id(trace.get_current_span().get_span_context().trace_id)
    log.error("unexpected error in a call", exc_info=error, extra={"method": attributes["rpc.method"]})
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {attributes['rpc.method']}; it was logged "
                        f"under trace {trace_id}: retry, and tell the bank if it goes on")


def _record_rpc(started: float, context, attributes: dict, error: BaseException | None) -> None:
    code = context.code()
    if code is not None:
        name = code.name if isinstance(code, grpc.StatusCode) else _STATUS_BY_VALUE.get(code, str(code))
    elif error is None:
        name = "OK"
    else:
        name = "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"
    _instruments().rpc_latency.record(
        time.perf_counter() - started, {**attributes, "rpc.grpc.status_code": name}
    )


_STATUS_BY_VALUE = {status.value[0]: status.name for status in grpc.StatusCode}
