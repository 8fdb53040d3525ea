"""Builds and runs a paymesh gRPC server: mTLS with a required client certificate,
the caller policy, tracing, health and reflection, graceful shutdown on SIGTERM."""

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from paymesh import telemetry, tls
from paymesh.authz import CallerCheck, CallerPolicy
from paymesh.config import ConfigurationError, Settings, port_of
from paymesh.logs import setup_logging
from paymesh.postgres import DatabaseUnavailable
from paymesh.tls import SERVER_OPTIONS
from paymesh.topology import SERVICES, Identity

log = logging.getLogger(__name__)
# The health service name that answers whether the process is alive, not whether it can work.
LIVENESS = "liveness"
# How often a service whose store cannot be opened (its database unreachable, say) tries again.
STORE_RETRY_SECONDS = 5.0


class Service(Protocol):
    """A service as its process runs it: its servicers and the work they own (stores, tasks)."""

    def add_to(self, server: grpc.aio.Server) -> list[str]:
        """Adds the servicers to the server; their full service names (for health and reflection)."""
        ...

    async def start(self) -> None:
        """On the running loop, before the port takes calls: background tasks, recovery."""
        ...

    async def stop(self, grace: float) -> None:
        """Once the server takes no more calls: finish within grace seconds, close the stores."""
        ...


# What a service's process builds from its settings (inside the event loop).
Build = Callable[[Settings], Service]


@dataclass
class Handlers:
    """A Service of servicers alone, nothing to start or stop: add(server) adds them, returns their names."""

    add: Callable[[grpc.aio.Server], Iterable[str]]

    def add_to(self, server: grpc.aio.Server) -> list[str]:
        return list(self.add(server))

    async def start(self) -> None:
        pass

    async def stop(self, grace: float) -> None:
        pass


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service: Service
    service_names: list[str]
    # The opt-in plaintext health-only server (PAYMESH_HEALTH_PORT); None by default.
    health_only: grpc.aio.Server | None = None
    health_only_port: int | None = None

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Refuses new calls at once; in-flight calls get up to grace seconds to finish; then the
        service stops what it owns."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.service.stop(grace)
        if self.health_only is not None:  # answered NOT_SERVING during the grace; now gone too
            await self.health_only.stop(0)


async def start_server(
    name: str, settings: Settings, service: Service, policy: CallerPolicy, port: int = 0,
    identity: Identity | None = None,
) -> RunningServer:
    """Starts the service named name on settings.bind_host:port (0 picks a free port) and marks it SERVING.
    identity: the certificate it serves with, when not the service's own (a router bulkhead's)."""
    # The certificate files as renewed in place: new connections get the new certificate, no restart.
    certificates = tls.CertificateFiles(settings.pki_dir, identity or SERVICES[name].identity)
    telemetry.observe_certificate_expiry(str(certificates.identity), certificates.expiry_days)
    server = grpc.aio.server(
        interceptors=[*telemetry.server_interceptors(), CallerCheck(policy)], options=SERVER_OPTIONS
    )
    names = service.add_to(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_reflection(server, [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name])
    bound = server.add_secure_port(f"{settings.bind_host}:{port}", tls.server_credentials(certificates))
    await service.start()
    await server.start()
    running = RunningServer(server, bound, health_servicer, service, names)
    if settings.health_port is not None:
        running.health_only, running.health_only_port = await start_health_only_server(settings, health_servicer)
    # A service that may run before it can do its work (a core with no loans yet) says when it serves;
    # "liveness" stays SERVING meanwhile (until shutdown), for probes that must not restart it for that.
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    follow_health = getattr(service, "follow_health", None)
    await (follow_health(running.set_serving) if follow_health is not None else running.set_serving(True))
    return running


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def add_reflection(server: grpc.aio.Server, service_names: list[str]) -> None:
    """Server reflection as grpc.reflection.v1 (what current grpcurl and Postman ask first) and
    v1alpha (older clients). grpcio-reflection serves v1alpha only; v1 is the same protocol under a
    new package name, the same messages on the wire, so one servicer answers both."""
    names = [*service_names, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
    })])


async def start_health_only_server(
    settings: Settings, health_servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """A plaintext port serving grpc.health.v1 and nothing else, for kubelet's native gRPC probes,
    which cannot present a client certificate. Opt-in by PAYMESH_HEALTH_PORT (a local run has none).
    A server of its own, so no domain service or reflection can be reached on it (UNIMPLEMENTED);
    it shares the servicer, so it answers what the mTLS port answers, NOT_SERVING while draining."""
    health_server = grpc.aio.server(options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
    bound = health_server.add_insecure_port(f"{settings.bind_host}:{settings.health_port}")
    await health_server.start()
    return health_server, bound


async def until_signalled() -> int:
    """Waits for SIGTERM or SIGINT; returns the signal number."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def on_signal(sig: int) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return await received


def write_port_file(settings: Settings, service: str, port: int) -> None:
    """$PAYMESH_HOME/run/<service>.port: how a launcher learns a port picked by the OS."""
    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{service}.port.tmp"
    tmp.write_text(str(port))
    tmp.replace(run_dir / f"{service}.port")


class WaitingForStore(Handlers):
    """What a service serves while its store cannot be opened: health alone, NOT_SERVING (liveness
    SERVING), so the platform routes nothing to it and does not restart it into a crash loop."""

    def __init__(self) -> None:
        super().__init__(lambda server: [])

    async def follow_health(self, set_serving: Callable) -> None:
        await set_serving(False)


async def start_when_store_opens(
    name: str, settings: Settings, build: Build, policy: CallerPolicy, port: int,
    identity: Identity | None, signalled: asyncio.Future,
) -> RunningServer | None:
    """The service's running server, built once its store opens; None if signalled before.
    While build(settings) says the store cannot be opened (DatabaseUnavailable), the port answers
    health NOT_SERVING and the build is tried again every STORE_RETRY_SECONDS."""
    waiting: RunningServer | None = None
    try:
        while True:
            try:
                service = build(settings)
                break
            except DatabaseUnavailable as refused:
                log.error("NOT_SERVING: the store cannot be opened; trying again",
                          extra={"reason": str(refused), "retry_seconds": STORE_RETRY_SECONDS})
            if waiting is None:
                waiting = await start_server(name, settings, WaitingForStore(), policy, port, identity)
                write_port_file(settings, name, waiting.port)
            await asyncio.wait([signalled], timeout=STORE_RETRY_SECONDS)
            if signalled.done():
                return None
    finally:
        if waiting is not None:
            await waiting.stop(0)
    return await start_server(name, settings, service, policy, port, identity)


async def serve(name: str, policy: CallerPolicy, build: Build, identity: Identity | None = None) -> None:
    """Runs the service named name until SIGTERM or SIGINT, then stops it gracefully."""
    settings = Settings.from_env()
    setup_logging(name, settings.log_level)
    tracer_provider = telemetry.setup_tracing(name, settings)
    metrics_setup = telemetry.setup_metrics(name, settings)
    tls.check_revocations(tls.RevocationList.from_env(settings.pki_dir))
    signalled = asyncio.ensure_future(until_signalled())
    running = await start_when_store_opens(name, settings, build, policy, port_of(SERVICES[name]), identity,
                                           signalled)
    if running is not None:
        await serve_until(running, settings, name, metrics_setup.port, signalled)
    telemetry.shutdown_within(telemetry.FLUSH_SECONDS, tracer_provider.shutdown, metrics_setup.shutdown)
    log.info("stopped")


async def serve_until(running: RunningServer, settings: Settings, name: str, metrics_port: int | None,
                      signalled: asyncio.Future) -> None:
    # What start-up built lives as long as the process: out of the collector's sight, a full
    # collection under load pauses the loop for less.
    gc.freeze()
    write_port_file(settings, name, running.port)
    # The opt-in plaintext ports: run/<service>-health.port and run/<service>-metrics.port.
    if running.health_only_port is not None:
        write_port_file(settings, f"{name}-health", running.health_only_port)
    if metrics_port is not None:
        write_port_file(settings, f"{name}-metrics", metrics_port)
    log.info("serving", extra={"port": running.port, "services": running.service_names,
                               "health_port": running.health_only_port, "metrics_port": metrics_port})
    sig = await signalled
    log.info("stopping", extra={"signal": signal.Signals(sig).name, "grace_seconds": settings.grace_seconds})
    await running.stop(settings.grace_seconds)


def main(name: str, policy: CallerPolicy, build: Build, identity: Identity | None = None) -> None:
    """The `python -m <service>` entry point: serve until SIGTERM, then exit 0."""
    try:
        asyncio.run(serve(name, policy, build, identity))
    except (FileNotFoundError, ConfigurationError) as missing:  # no PKI yet, a bad variable: say what to do
        print(f"{name}: {missing}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)
