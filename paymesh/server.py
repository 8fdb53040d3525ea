"""Builds and runs a paymesh gRPC server: mTLS with a required client certificate,
the caller policy, tracing, health and reflection, graceful shutdown on SIGTERM."""

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from paymesh import pki, telemetry, tls
from paymesh.authz import CallerCheck, CallerPolicy
from paymesh.config import Settings, port_of
from paymesh.logs import setup_logging
from paymesh.tls import SERVER_OPTIONS, server_credentials
from paymesh.topology import SERVICES, Identity

log = logging.getLogger(__name__)

# Adds the service's servicers to the server and returns their full service names.
Register = Callable[[grpc.aio.Server], Iterable[str]]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: list[str]
    # The opt-in plaintext health-only server (PAYMESH_HEALTH_PORT); None by default.
    health_only: grpc.aio.Server | None = None
    health_only_port: int | None = None

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Refuses new calls at once; in-flight calls get up to grace seconds to finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.health_only is not None:  # answered NOT_SERVING during the grace; now gone too
            await self.health_only.stop(0)


async def start_server(
    service: str, settings: Settings, register: Register, policy: CallerPolicy, port: int = 0,
    identity: Identity | None = None,
) -> RunningServer:
    """Starts the service's server on settings.bind_host:port (0 picks a free port) and marks it SERVING.
    identity: the certificate it serves with, when not the service's own (a router bulkhead's)."""
    material = pki.load(settings.pki_dir, identity or SERVICES[service].identity)
    server = grpc.aio.server(
        interceptors=[*telemetry.server_interceptors(), CallerCheck(policy)], options=SERVER_OPTIONS
    )
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    bound = server.add_secure_port(f"{settings.bind_host}:{port}", server_credentials(material))
    await server.start()
    running = RunningServer(server, bound, health_servicer, names)
    if settings.health_port is not None:
        running.health_only, running.health_only_port = await start_health_only_server(settings, health_servicer)
    await running.set_serving(True)
    return running


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
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: received.done() or received.set_result(s))
    return await received


def write_port_file(settings: Settings, service: str, port: int) -> None:
    """$PAYMESH_HOME/run/<service>.port: how a launcher learns a port picked by the OS."""
    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{service}.port.tmp"
    tmp.write_text(str(port))
    tmp.replace(run_dir / f"{service}.port")


async def serve(
    service: str,
    register: Register,
    policy: CallerPolicy,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    identity: Identity | None = None,
) -> None:
    settings = Settings.from_env()
    setup_logging(service, settings.log_level)
    tracer_provider = telemetry.setup_tracing(service, settings)
    metrics_setup = telemetry.setup_metrics(service, settings)
    tls.check_revocations(tls.RevocationList.from_env(settings.pki_dir))
    running = await start_server(service, settings, register, policy, port_of(SERVICES[service]), identity)
    # What start-up built lives as long as the process: out of the collector's sight, a full
    # collection under load pauses the loop for less.
    gc.freeze()
    write_port_file(settings, service, running.port)
    # The opt-in plaintext ports: run/<service>-health.port and run/<service>-metrics.port.
    if running.health_only_port is not None:
        write_port_file(settings, f"{service}-health", running.health_only_port)
    if metrics_setup.port is not None:
        write_port_file(settings, f"{service}-metrics", metrics_setup.port)
    log.info("serving", extra={"port": running.port, "services": running.service_names,
                               "health_port": running.health_only_port, "metrics_port": metrics_setup.port})
    sig = await until_signalled()
    log.info("stopping", extra={"signal": signal.Signals(sig).name, "grace_seconds": settings.grace_seconds})
    await running.stop(settings.grace_seconds)
    if on_stop is not None:
        await on_stop()
    tracer_provider.shutdown()
    metrics_setup.shutdown()
    log.info("stopped")


def main(service: str, register: Register, policy: CallerPolicy, on_stop=None, identity: Identity | None = None
         ) -> None:
    """The `python -m <service>` entry point: serve until SIGTERM, then exit 0."""
    try:
        asyncio.run(serve(service, register, policy, on_stop, identity))
    except FileNotFoundError as missing:  # no PKI yet: say what to run, not a traceback
        print(f"{service}: {missing}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)
