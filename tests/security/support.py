"""Helpers of the security matrix: what the whole mesh holds (to show an attack changed
nothing), credentials that must not get in, and raw connections to the mainframe emulator."""

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import sqlite3
import ssl
import time
from base64 import urlsafe_b64encode
from pathlib import Path

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_api, mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
from bank.payments.v1 import payment_operations_service_pb2 as ops_api, payment_operations_service_pb2_grpc as ops_grpc
from mainframe_bridge.framing import encode_frame, read_frame
from payment_router.channel_policy import DEFAULT_POLICY_FILE
from payment_router.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER
from paymesh_tools.dev_tokens import mint
from paymesh_tools import dev_pki
from paymesh import pki, tls
from paymesh.topology import OPERATOR, Identity

ATM = Identity("channel", "atm")


async def mesh_state(mesh, pki_dir, day: str, loan_id: str) -> dict:
    """Every stage's own account of the day, read by the operator: the router's totals, a loan's
    balances at its core, the confirmations' totals, the bridge's ledger summary, the emulator's postings."""
    state = {}
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, OPERATOR) as ch:
        state["router"] = await ops_grpc.PaymentOperationsServiceStub(ch).SummarizePayments(
            ops_api.SummarizePaymentsRequest(business_date=day), timeout=5)
    async with tls.channel_for(mesh["core-cash"].address, pki_dir, OPERATOR) as ch:
        loan = (await core_grpc.LoanCoreServiceStub(ch).GetLoan(
            core_api.GetLoanRequest(loan_id=loan_id, as_of_date=day), timeout=5)).loan
        state["loan"] = (loan.outstanding_principal.amount_minor, loan.amount_due.amount_minor, loan.prepaid_minor)
        state["core day"] = await core_grpc.LoanCoreServiceStub(ch).ListAppliedPayments(
            core_api.ListAppliedPaymentsRequest(business_date=day), timeout=5)
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, OPERATOR) as ch:
        state["confirmations"] = await conf_grpc.ConfirmationServiceStub(ch).SummarizeConfirmations(
            conf_api.SummarizeConfirmationsRequest(business_date=day), timeout=5)
    async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir, OPERATOR) as ch:
        state["bridge"] = await bridge_grpc.MainframeBridgeServiceStub(ch).GetLedgerSummary(
            bridge_api.GetLedgerSummaryRequest(business_date=day), timeout=5)
    state["emulator postings"] = emulator_posting_count(mesh)
    return state


def emulator_posting_count(mesh) -> int:
    emulator = mesh["mainframe-emulator"]
    database = emulator.home / "data" / "mainframe-emulator.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return connection.execute("SELECT count(*) FROM postings").fetchone()[0]


async def settled_state(mesh, pki_dir, day: str, loan_id: str) -> dict:
    """The state once it stops moving (earlier payments may still be on their way to the
    bridge, the mainframe and confirmations)."""
    previous = await mesh_state(mesh, pki_dir, day, loan_id)
    for _ in range(100):
        await asyncio.sleep(0.1)
        current = await mesh_state(mesh, pki_dir, day, loan_id)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the mesh did not settle within 10 s")


def bad_credentials(case: str, pki_dir) -> pki.Material | None:
    """A client credential the mesh must refuse: none at all, another CA's, or an expired one."""
    if case == "no client certificate":
        return None
    if case == "another CA":
        rogue = dev_pki.CertificateAuthority.create("rogue CA").issue(ATM)
        # The rogue's key and certificate, trusting the mesh's CA: only the client side is wrong.
        return pki.Material(rogue.key, rogue.cert, pki.ca_path(pki_dir).read_bytes())
    if case == "expired certificate":
        # Signed by the mesh's own CA: expiry is the only thing wrong with it.
        ca = dev_pki._load_ca(pki_dir)
        assert ca is not None, "the session's dev PKI has its CA"
        return ca.issue(ATM, not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
    raise ValueError(case)


def grpc_channel(address: str, material: pki.Material | None, pki_dir) -> grpc.aio.Channel:
    if material is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_path(pki_dir).read_bytes())
        return grpc.aio.secure_channel(address, credentials, options=tls.CHANNEL_OPTIONS)
    return tls.secure_channel(address, material)


async def health(channel: grpc.aio.Channel) -> str:
    """SERVING, or the status code the call ended with."""
    async with channel as ch:
        try:
            # types-grpcio-health-checking declares HealthStub without its methods (Check, Watch).
            stub = health_pb2_grpc.HealthStub(ch)
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def emulator_context(pki_dir, material: pki.Material | None, tmp_path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_path(pki_dir)))
    if material is not None:
        cert, key = tmp_path / "client.crt", tmp_path / "client.key"
        cert.write_bytes(material.cert)
        key.write_bytes(material.key)
        context.load_cert_chain(cert, key)
    return context


async def emulator_exchange(address: str, context: ssl.SSLContext, frames: list[bytes]) -> list[bytes]:
    """Sends frames on one TLS connection; the answers (raises when the emulator hangs up instead)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=context), 5)
    try:
        writer.write(b"".join(encode_frame(f) for f in frames))
        await writer.drain()
        return [await asyncio.wait_for(read_frame(reader), 5) for _ in frames]
    finally:
        writer.close()


def identity_context(pki_dir, identity: Identity) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_path(pki_dir)))
    context.load_cert_chain(pki.cert_path(pki_dir, identity), pki.key_path(pki_dir, identity))
    return context


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {"iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": "CUST-0001", "nbf": now, "exp": now + 600}
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


def _hs256_with_the_public_key(pki_dir) -> str:
    """Algorithm confusion: an HMAC token whose secret is the issuer's (public) verification key."""
    part = lambda data: urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")  # noqa: E731
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(_claims())
    secret = dev_pki.token_public_key_path(pki_dir).read_bytes()
    signature = urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


BAD_TOKENS = {
    "missing": lambda pki_dir: None,
    "not a bearer token": lambda pki_dir: "Basic Q1VTVC0wMDAxOnB3",
    "garbage": lambda pki_dir: "Bearer not.a.jwt",
    "expired": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", "internet-banking",
                                                exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200),
    "not yet valid": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", "internet-banking",
                                                      nbf=int(time.time()) + 3600),
    "wrong audience": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", "internet-banking", aud="another-api"),
    "wrong issuer": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", "internet-banking",
                                                     iss="https://evil.example"),
    "no subject": lambda pki_dir: "Bearer " + jwt.encode(
        _claims(sub=None), dev_pki.token_signing_key_path(pki_dir).read_bytes(), algorithm="ES256"),
    # (alg none takes no key: PyJWT reads "" as None, and its annotation admits no None)
    "alg none": lambda pki_dir: "Bearer " + jwt.encode(_claims(), key="", algorithm="none"),
    "HS256 with the public key": lambda pki_dir: "Bearer " + _hs256_with_the_public_key(pki_dir),
    "signed by another key": lambda pki_dir: "Bearer " + jwt.encode(
        _claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
}


def slow_atm_policy(folder: Path, rate: int, burst: int) -> Path:
    """The channel policy with the ATM channel's rate cut to rate/s (burst), the rest as shipped."""
    shipped = DEFAULT_POLICY_FILE.read_text()
    slowed = shipped.replace("rate_per_second = 1000\nburst = 2000", f"rate_per_second = {rate}\nburst = {burst}")
    assert slowed != shipped, "the ATM's rate in channels.toml moved; update this helper"
    path = folder / "channels.toml"
    path.write_text(slowed)
    return path
