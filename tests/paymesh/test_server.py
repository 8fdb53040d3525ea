"""What every service's server answers beside its own methods, as a client in another language asks:
grpc.health.v1 Check and Watch, server reflection v1 and v1alpha. In process, real mTLS."""

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from paymesh import tls
from paymesh.authz import CallerPolicy
from paymesh import server as server_module
from paymesh.postgres import DatabaseUnavailable
from paymesh.server import LIVENESS, REFLECTION_V1, Handlers, start_server
from paymesh.topology import OPERATOR, Identity

SERVING = health_pb2.HealthCheckResponse.SERVING
ATM = Identity("channel", "atm")


@pytest.fixture
async def address(settings):
    running = await start_server("core-cash", settings, Handlers(lambda server: []), CallerPolicy.only([OPERATOR]))
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


async def test_health_watch_streams_the_status(address, settings):
    """Watch answered UNKNOWN on every service: the tracing interceptor took it for an async generator."""
    async with tls.channel_for(address, settings.pki_dir, OPERATOR) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        first = await call.read()
        call.cancel()
    assert first.status == SERVING


@pytest.mark.parametrize("path", [f"/{REFLECTION_V1}/ServerReflectionInfo",
                                  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"])
async def test_reflection_is_served_as_v1_and_v1alpha(address, settings, path):
    """Only v1alpha was served; current grpcurl and Postman ask v1 first and got UNIMPLEMENTED."""
    async with tls.channel_for(address, settings.pki_dir, OPERATOR) as channel:
        info = channel.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        call = info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        listed = {service.name async for reply in call for service in reply.list_services_response.service}
    assert {"grpc.health.v1.Health", REFLECTION_V1, "grpc.reflection.v1alpha.ServerReflection"} <= listed


@pytest.mark.parametrize("path", [f"/{REFLECTION_V1}/ServerReflectionInfo",
                                  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"])
async def test_reflection_in_either_version_stays_the_operators(settings, path):
    """Reflection maps every method: a channel may call the service (the default) but not reflection."""
    running = await start_server("core-cash", settings, Handlers(lambda server: []),
                                 CallerPolicy(default=frozenset([OPERATOR, ATM])))
    try:
        async with tls.channel_for(f"127.0.0.1:{running.port}", settings.pki_dir, ATM) as channel:
            info = channel.stream_stream(
                path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5):
                    pass
    finally:
        await running.stop(0)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_service_whose_store_cannot_open_waits_not_serving_then_serves(settings, monkeypatch):
    """An unreachable database at start is no crash loop: the port answers NOT_SERVING (liveness
    SERVING) while the build is tried again, then the service serves on the same port."""
    monkeypatch.setattr(server_module, "STORE_RETRY_SECONDS", 0.2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempts = []
    store_opens = asyncio.Event()

    def build(_settings):
        attempts.append(1)
        if not store_opens.is_set():
            raise DatabaseUnavailable("cannot open PostgreSQL database postgresql://core:***@db/core_cash: refused")
        return Handlers(lambda server: [])

    signalled = asyncio.get_running_loop().create_future()
    starting = asyncio.ensure_future(server_module.start_when_store_opens(
        "core-cash", settings, build, CallerPolicy.only([OPERATOR]), port, None, signalled))
    async with tls.channel_for(f"127.0.0.1:{port}", settings.pki_dir, OPERATOR) as channel:
        health_stub = health_pb2_grpc.HealthStub(channel)
        waiting = await health_stub.Check(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True, timeout=5)
        alive = await health_stub.Check(health_pb2.HealthCheckRequest(service=LIVENESS), timeout=5)
        assert (waiting.status, alive.status) == (health_pb2.HealthCheckResponse.NOT_SERVING, SERVING)
        await asyncio.sleep(0.5)
        assert len(attempts) >= 2 and not starting.done()  # still trying, still up
        store_opens.set()
        running = await asyncio.wait_for(starting, 5)
    async with tls.channel_for(f"127.0.0.1:{port}", settings.pki_dir, OPERATOR) as channel:
        serving = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert serving.status == SERVING and running.port == port
    await running.stop(0)


async def test_a_signal_while_waiting_for_the_store_stops_the_service(settings, monkeypatch):
    monkeypatch.setattr(server_module, "STORE_RETRY_SECONDS", 0.1)

    def build(_settings):
        raise DatabaseUnavailable("the database's schema is at version 9, newer than this release knows (3)")

    signalled = asyncio.get_running_loop().create_future()
    starting = asyncio.ensure_future(server_module.start_when_store_opens(
        "core-cash", settings, build, CallerPolicy.only([OPERATOR]), 0, None, signalled))
    await asyncio.sleep(0.3)
    signalled.set_result(15)
    assert await asyncio.wait_for(starting, 5) is None
