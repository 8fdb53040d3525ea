"""mTLS and caller identity on a real server (in process, loopback, port 0)."""

import datetime as dt
import socket
import ssl

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bank.loans.v1 import loan_core_service_pb2 as core_pb, loan_core_service_pb2_grpc as core_grpc
from paymesh_tools import dev_pki
from paymesh import pki, tls
from paymesh.errors import error_info
from paymesh.topology import OPERATOR, ROUTER, Identity

ATM = Identity("channel", "atm")


async def _get_loan(channel: grpc.aio.Channel):
    return await core_grpc.LoanCoreServiceStub(channel).GetLoan(core_pb.GetLoanRequest(loan_id="CSH-000001"), timeout=5)


async def test_health_is_serving_and_reflection_lists_the_services(core, settings):
    async with tls.channel_for(core, settings.pki_dir, OPERATOR) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name async for r in call for s in r.list_services_response.service}
    assert "bank.loans.v1.LoanCoreService" in names
    assert "grpc.health.v1.Health" in names


async def test_a_channel_calling_a_core_is_permission_denied(core, settings):
    async with tls.channel_for(core, settings.pki_dir, ATM) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _get_loan(channel)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://paymesh.bank/channel/atm" in refused.value.details()
    info = error_info(refused.value)
    assert (info.reason, info.domain) == ("CALLER_NOT_ALLOWED", "paymesh.bank")


async def test_the_router_gets_past_the_caller_check(core, settings):
    async with tls.channel_for(core, settings.pki_dir, ROUTER) as channel:
        answered = await _get_loan(channel)
    assert answered.loan.loan_id == "CSH-000001"


async def test_no_client_certificate_fails_the_handshake(core, settings):
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_path(settings.pki_dir).read_bytes())
    async with grpc.aio.secure_channel(core, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _get_loan(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_fails_the_handshake(core, settings):
    rogue = dev_pki.CertificateAuthority.create("rogue CA").issue(ROUTER)
    material = pki.Material(rogue.key, rogue.cert, pki.ca_path(settings.pki_dir).read_bytes())
    async with tls.secure_channel(core, material) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _get_loan(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_expired_certificate_fails_the_handshake(core, settings):
    # Signed by the mesh's own CA, so expiry is the only thing wrong with it.
    expired = dev_pki._load_ca(settings.pki_dir).issue(
        ROUTER,
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    async with tls.secure_channel(core, expired) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _get_loan(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def _handshake(address: str, settings, highest: ssl.TLSVersion) -> str | None:
    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.ca_path(settings.pki_dir))
    context.load_cert_chain(pki.cert_path(settings.pki_dir, ROUTER), pki.key_path(settings.pki_dir, ROUTER))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = highest
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls_socket:
            return tls_socket.version()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_older_than_1_2_is_refused(core, settings):
    assert _handshake(core, settings, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # the same client, allowed 1.2
    with pytest.raises(ssl.SSLError):
        _handshake(core, settings, ssl.TLSVersion.TLSv1_1)


def test_identity_is_read_only_from_a_single_spiffe_uri():
    assert Identity.parse("spiffe://paymesh.bank/channel/atm") == ATM
    assert Identity.parse("spiffe://evil.bank/channel/atm") is None
    assert Identity.parse("spiffe://paymesh.bank/root/admin") is None
    # A device of a channel that has them is that channel (its rights), with its device named.
    device = Identity.parse("spiffe://paymesh.bank/channel/atm/ATM-0042")
    assert device == ATM and device.device == "ATM-0042"
    for bad in ("channel/store/STORE-1", "channel/atm/a/b", "channel/atm/", "channel/atm/-x",
                "service/payment-router/x"):
        assert Identity.parse(f"spiffe://paymesh.bank/{bad}") is None, bad
    material = dev_pki.CertificateAuthority.create().issue(ATM)
    assert tls.identity_from_pem(material.cert) == ATM
