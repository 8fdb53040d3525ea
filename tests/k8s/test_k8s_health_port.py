"""The opt-in plaintext health port for kubelet's gRPC probes (PAYMESH_HEALTH_PORT):
it answers grpc.health.v1 as the mTLS port does, refuses every domain service and
reflection with UNIMPLEMENTED, and does not exist unless asked for."""

import dataclasses

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bank.confirmations.v1 import confirmation_service_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2
from bank.loans.v1 import loan_core_service_pb2
from bank.payments.v1 import payment_service_pb2
from paymesh import tls
from paymesh.authz import CallerPolicy
from paymesh.config import Settings
from paymesh.server import Handlers, start_server
from paymesh.topology import OPERATOR
from tests.harness import start_service

# Every domain service of the mesh, each method answering b"ok" on the mTLS port, so a refusal on the
# health port shows the port's isolation, not a service that happens to be unimplemented.
DOMAIN_SERVICES = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (payment_service_pb2, "PaymentService"),
        (loan_core_service_pb2, "LoanCoreService"),
        (mainframe_bridge_service_pb2, "MainframeBridgeService"),
        (confirmation_service_pb2, "ConfirmationService"),
    )
]
POLICY = CallerPolicy.only([OPERATOR])


async def answer_ok(request: bytes, context) -> bytes:
    return b"ok"


def register_every_domain_service(server):
    for service in DOMAIN_SERVICES:
        handlers = {m.name: grpc.unary_unary_rpc_method_handler(answer_ok) for m in service.methods}
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service.full_name, handlers)])
    return [service.full_name for service in DOMAIN_SERVICES]


def every_method_path():
    return [f"/{service.full_name}/{method.name}" for service in DOMAIN_SERVICES for method in service.methods]


async def plaintext_health(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        # types-grpcio-health-checking declares HealthStub without its methods (Check, Watch).
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_health_port_serves_health_and_nothing_else(settings):
    settings = dataclasses.replace(settings, health_port=0)
    running = await start_server("core-cash", settings, Handlers(register_every_domain_service), POLICY)
    try:
        assert running.health_only_port not in (None, running.port)
        assert await plaintext_health(running.health_only_port) == "SERVING"
        paths = every_method_path()
        async with tls.channel_for(f"127.0.0.1:{running.port}", settings.pki_dir, OPERATOR) as channel:
            assert await channel.unary_unary(paths[0])(b"", timeout=5) == b"ok"  # served over mTLS
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.health_only_port}") as channel:
            for path in [*paths, f"/{reflection.SERVICE_NAME}/ServerReflectionInfo"]:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await channel.unary_unary(path)(b"", timeout=5)
                assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
        # The same servicer: what the mTLS port says while draining, the probe port says too.
        await running.set_serving(False)
        assert await plaintext_health(running.health_only_port) == "NOT_SERVING"
    finally:
        await running.stop(0)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await plaintext_health(running.health_only_port)
    assert gone.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_no_health_port_by_default(settings, monkeypatch):
    monkeypatch.delenv("PAYMESH_HEALTH_PORT", raising=False)
    assert Settings.from_env().health_port is None
    monkeypatch.setenv("PAYMESH_HEALTH_PORT", " ")
    assert Settings.from_env().health_port is None
    monkeypatch.setenv("PAYMESH_HEALTH_PORT", "8081")
    assert Settings.from_env().health_port == 8081

    running = await start_server("core-cash", settings, Handlers(register_every_domain_service), POLICY)
    try:
        assert (running.health_only, running.health_only_port) == (None, None)
        # The only port is the mTLS one: a plaintext health check there gets no answer.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await plaintext_health(running.port)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_a_service_process_opens_the_health_port_only_when_configured(tmp_path, settings):
    service = start_service("mainframe-bridge", tmp_path, settings.pki_dir, PAYMESH_HEALTH_PORT="0")
    try:
        port = int((tmp_path / "run" / "mainframe-bridge-health.port").read_text())
        assert await plaintext_health(port) == "SERVING"
    finally:
        assert service.terminate() == 0, service.log()
