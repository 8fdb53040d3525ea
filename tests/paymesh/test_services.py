"""Every service as its own process: SERVING over mTLS, reflection, clean SIGTERM."""

import asyncio
import ssl
import time

import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mainframe_bridge.framing import PING, PONG, encode_frame, read_frame
from paymesh import pki, tls
from paymesh_tools.probe import emulator_health, grpc_health
from paymesh.topology import BRIDGE, OPERATOR, SERVICES, Identity
from tests.harness import start_service

GRPC_SERVICES = {
    "payment-router": "bank.payments.v1.PaymentService",
    "core-cash": "bank.loans.v1.LoanCoreService",
    "core-mortgage": "bank.loans.v1.LoanCoreService",
    "core-vehicle": "bank.loans.v1.LoanCoreService",
    "mainframe-bridge": "bank.ledger.v1.MainframeBridgeService",
    "confirmations": "bank.confirmations.v1.ConfirmationService",
}
GRACE_SECONDS = 3.0


def test_every_service_is_covered():
    assert set(GRPC_SERVICES) | {"mainframe-emulator"} == set(SERVICES)


@pytest.mark.parametrize("name", sorted(GRPC_SERVICES))
async def test_service_serves_over_mtls_and_stops_cleanly_on_sigterm(name, tmp_path, settings):
    service = start_service(name, tmp_path, settings.pki_dir)
    try:
        assert await grpc_health(service.address, settings) == "SERVING"
        async with tls.channel_for(service.address, settings.pki_dir, OPERATOR) as channel:
            call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            listed = {s.name async for r in call for s in r.list_services_response.service}
        assert GRPC_SERVICES[name] in listed
        started = time.monotonic()
        assert service.terminate(timeout=GRACE_SECONDS + 5) == 0, service.log()
        assert time.monotonic() - started < GRACE_SECONDS + 1
        assert '"message": "stopped"' in service.log()
    finally:
        service.kill()


async def _ping_as(address: str, pki_dir, identity: Identity) -> bytes:
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki.ca_path(pki_dir)))
    context.load_cert_chain(pki.cert_path(pki_dir, identity), pki.key_path(pki_dir, identity))
    reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        writer.write(encode_frame(PING))
        await writer.drain()
        return await asyncio.wait_for(read_frame(reader), 5)
    finally:
        writer.close()


async def test_mainframe_emulator_answers_the_bridge_only(tmp_path, settings):
    emulator = start_service("mainframe-emulator", tmp_path, settings.pki_dir)
    try:
        assert await emulator_health(emulator.address, settings) == "SERVING"
        assert await _ping_as(emulator.address, settings.pki_dir, BRIDGE) == PONG
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError, ssl.SSLError)):
            await _ping_as(emulator.address, settings.pki_dir, Identity("channel", "atm"))
        assert emulator.terminate(timeout=GRACE_SECONDS + 5) == 0, emulator.log()
    finally:
        emulator.kill()
