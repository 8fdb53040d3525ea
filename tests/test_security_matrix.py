"""The attack matrix on the real mesh (every service its own process, real mTLS): each
attack is refused with the right status, and the whole mesh's state, read by the
operator from every stage, is exactly what it was before."""

import asyncio
import hashlib
import hmac
import json
import ssl
import time
from base64 import urlsafe_b64encode
from contextlib import asynccontextmanager

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.confirmations.v1 import confirmations_pb2
from bank.ledger.v1 import ledger_pb2, mainframe_bridge_service_pb2 as bridge_api
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc
from mainframe_bridge import records
from mainframe_bridge.framing import PING, PONG
from payment_router.business_day import batch_requests
from payment_router.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, mint
from paymesh import pki, tls
from paymesh.errors import error_info
from paymesh.topology import BRIDGE, OPERATOR, ROUTER, SERVICES, Identity
from tests.harness import start_mesh, stop_mesh
from tests.security_support import (ATM, bad_credentials, emulator_context, emulator_exchange, grpc_channel, health,
                                    identity_context, settled_state)
from tests.test_router import AS_OF, ENV, open_loans, order, refused, submit

VICTIM = open_loans(types_pb2.LOAN_TYPE_CASH)[5]  # the loan every attack tries to move
GRPC_SERVICES = ("payment-router", "core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations")
HANDSHAKE_REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)
OVER_RECEIVE_LIMIT = 17 * 1024 * 1024  # paymesh/tls.py lets a server receive 16 MiB


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, pki_dir):
    services = start_mesh(tmp_path_factory.mktemp("mesh"), pki_dir, **ENV)
    yield services
    stop_mesh(services)


@pytest.fixture(scope="module")
async def store_payment(mesh, pki_dir):
    """A payment of the store channel, for the other channels to go after (and so no stage is empty)."""
    payment = await submit(mesh, pki_dir, "store", order("sec-store-1", open_loans(types_pb2.LOAN_TYPE_CASH)[7]))
    assert payment.status == types_pb2.PAYMENT_STATUS_APPLIED
    return payment


@asynccontextmanager
async def nothing_changes(mesh, pki_dir):
    before = await settled_state(mesh, pki_dir, AS_OF, VICTIM)
    yield
    await asyncio.sleep(0.3)  # whatever an attack had set going would show by now
    assert await settled_state(mesh, pki_dir, AS_OF, VICTIM) == before


async def denied(call) -> grpc.aio.AioRpcError:
    """The error a call (unary, or a stream to drain) ends with."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        if hasattr(call, "__aiter__"):
            [_ async for _ in call]
        else:
            await call
    return error.value


def assert_caller_not_allowed(error: grpc.aio.AioRpcError):
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert error_info(error).reason == "CALLER_NOT_ALLOWED"


@pytest.mark.parametrize("case", ["no client certificate", "another CA", "expired certificate"])
async def test_without_a_valid_mesh_certificate_no_service_answers(mesh, pki_dir, tmp_path, store_payment, case):
    material = bad_credentials(case, pki_dir)
    async with nothing_changes(mesh, pki_dir):
        async with grpc_channel(mesh["payment-router"].address, material, pki_dir) as ch:
            error = await denied(api_grpc.PaymentServiceStub(ch).SubmitPayment(
                api.SubmitPaymentRequest(payment=order(f"sec-cert-{len(case)}", VICTIM)), timeout=5))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        for name in GRPC_SERVICES:  # not even the health check, open to every mesh certificate
            assert await health(grpc_channel(mesh[name].address, material, pki_dir)) == "UNAVAILABLE", name
        with pytest.raises(HANDSHAKE_REFUSED):
            await emulator_exchange(mesh["mainframe-emulator"].address,
                                    emulator_context(pki_dir, material, tmp_path), [PING])
    assert await health(tls.channel_for(mesh["payment-router"].address, pki_dir, OPERATOR)) == "SERVING"


async def test_a_channel_certificate_cannot_call_a_core_directly(mesh, pki_dir, store_payment):
    forged = core_api.LoanPayment(payment_id="PAY-forged-core", loan_id=VICTIM, business_date=AS_OF,
                                  amount=types_pb2.Money(currency_code="PEN", amount_minor=100_000),
                                  channel=types_pb2.CHANNEL_ATM)
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["core-cash"].address, pki_dir, ATM) as ch:
            stub = core_grpc.LoanCoreServiceStub(ch)
            assert_caller_not_allowed(await denied(stub.ApplyPayments(
                iter([core_api.ApplyPaymentsRequest(payments=[forged])]), timeout=5)))
            assert_caller_not_allowed(await denied(stub.ReversePayment(core_api.ReversePaymentRequest(
                reversal_id="REV-forged", payment_id=store_payment.payment_id, business_date=AS_OF), timeout=5)))
            assert_caller_not_allowed(await denied(stub.GetLoan(core_api.GetLoanRequest(loan_id=VICTIM), timeout=5)))


async def test_a_channel_certificate_cannot_call_the_bridge(mesh, pki_dir, store_payment):
    forged = ledger_pb2.Posting(posting_id="PAY-forged-bridge", business_date=AS_OF, payment_id="PAY-forged-bridge",
                                channel=types_pb2.CHANNEL_ATM, loan_type=types_pb2.LOAN_TYPE_CASH)
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir, ATM) as ch:
            stub = bridge_grpc.MainframeBridgeServiceStub(ch)
            assert_caller_not_allowed(await denied(stub.PostEntries(
                iter([bridge_api.PostEntriesRequest(postings=[forged])]), timeout=5)))
            assert_caller_not_allowed(await denied(stub.CloseBusinessDay(
                bridge_api.CloseBusinessDayRequest(business_date=AS_OF), timeout=5)))
            assert_caller_not_allowed(await denied(stub.GetPostingStatus(
                bridge_api.GetPostingStatusRequest(posting_id=store_payment.payment_id), timeout=5)))


async def test_a_channel_certificate_cannot_publish_confirmations(mesh, pki_dir, store_payment):
    forged = confirmations_pb2.Confirmation(
        payment_id="PAY-forged-confirmation", channel=types_pb2.CHANNEL_ATM, loan_id=VICTIM,
        status=types_pb2.PAYMENT_STATUS_APPLIED, business_date=AS_OF,
        amount=types_pb2.Money(currency_code="PEN", amount_minor=100_000))
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["confirmations"].address, pki_dir, ATM) as ch:
            stub = conf_grpc.ConfirmationServiceStub(ch)
            assert_caller_not_allowed(await denied(stub.PublishConfirmations(
                iter([conf_api.PublishConfirmationsRequest(confirmations=[forged])]), timeout=5)))
            assert_caller_not_allowed(await denied(stub.SummarizeConfirmations(
                conf_api.SummarizeConfirmationsRequest(business_date=AS_OF), timeout=5)))


async def test_a_channel_certificate_cannot_talk_to_the_mainframe(mesh, pki_dir, store_payment):
    posting = records.encode_posting(records.PostingRecord(
        "PAY-forged-mainframe", int(AS_OF.replace("-", "")), "PAY-forged-mainframe", types_pb2.CHANNEL_ATM,
        types_pb2.LOAN_TYPE_CASH, (records.Entry("E1", "110504", "D", "PEN", 100_000),
                                   records.Entry("E2", "140101", "C", "PEN", 100_000))))
    emulator = mesh["mainframe-emulator"].address
    async with nothing_changes(mesh, pki_dir):
        with pytest.raises(HANDSHAKE_REFUSED):  # hung up on, not a word answered
            await emulator_exchange(emulator, identity_context(pki_dir, ATM), [posting, PING])
    assert await emulator_exchange(emulator, identity_context(pki_dir, BRIDGE), [PING]) == [PONG]


@pytest.mark.parametrize("identity", [SERVICES["core-cash"].identity, BRIDGE, ROUTER, OPERATOR], ids=str)
async def test_a_service_certificate_is_not_a_channel(mesh, pki_dir, store_payment, identity):
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, identity) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            assert_caller_not_allowed(await denied(stub.SubmitPayment(
                api.SubmitPaymentRequest(payment=order("sec-service-1", VICTIM)), timeout=5)))
            assert_caller_not_allowed(await denied(stub.GetPayment(
                api.GetPaymentRequest(payment_id=store_payment.payment_id), timeout=5)))


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {"iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": "CUST-0001", "nbf": now, "exp": now + 600}
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


def _hs256_with_the_public_key(pki_dir) -> str:
    """Algorithm confusion: an HMAC token whose secret is the issuer's (public) verification key."""
    part = lambda data: urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")  # noqa: E731
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(_claims())
    secret = pki.token_public_key_path(pki_dir).read_bytes()
    signature = urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


BAD_TOKENS = {
    "missing": lambda pki_dir: None,
    "not a bearer token": lambda pki_dir: "Basic Q1VTVC0wMDAxOnB3",
    "garbage": lambda pki_dir: "Bearer not.a.jwt",
    "expired": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", exp=int(time.time()) - 3600,
                                                nbf=int(time.time()) - 7200),
    "not yet valid": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", nbf=int(time.time()) + 3600),
    "wrong audience": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", aud="another-api"),
    "wrong issuer": lambda pki_dir: "Bearer " + mint(pki_dir, "CUST-0001", iss="https://evil.example"),
    "no subject": lambda pki_dir: "Bearer " + jwt.encode(
        _claims(sub=None), pki.token_signing_key_path(pki_dir).read_bytes(), algorithm="ES256"),
    "alg none": lambda pki_dir: "Bearer " + jwt.encode(_claims(), key=None, algorithm="none"),
    "HS256 with the public key": lambda pki_dir: "Bearer " + _hs256_with_the_public_key(pki_dir),
    "signed by another key": lambda pki_dir: "Bearer " + jwt.encode(
        _claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_end_user_token_is_unauthenticated(mesh, pki_dir, store_payment, case):
    authorization = BAD_TOKENS[case](pki_dir)
    metadata = (("authorization", authorization),) if authorization else None
    async with nothing_changes(mesh, pki_dir):
        error = await refused(mesh, pki_dir, "internet-banking", order(f"sec-jwt-{len(case)}", VICTIM), metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    assert error_info(error).reason == "TOKEN_INVALID" and error.details()


async def test_another_channels_payment_is_not_found_and_cannot_be_reversed(mesh, pki_dir, store_payment):
    wanted = store_payment.payment_id
    async with nothing_changes(mesh, pki_dir):
        for channel in ("atm", "agent"):
            async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", channel)) as ch:
                stub = api_grpc.PaymentServiceStub(ch)
                error = await denied(stub.GetPayment(api.GetPaymentRequest(payment_id=wanted), timeout=5))
                assert error.code() == grpc.StatusCode.NOT_FOUND and error_info(error).reason == "PAYMENT_NOT_FOUND"
                if channel == "agent":  # agents may reverse their own payments, not a store's
                    error = await denied(stub.ReversePayment(api.ReversePaymentRequest(
                        idempotency_key="sec-steal-1", payment_id=wanted, reason="not ours"), timeout=5))
                    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
                    assert error_info(error).reason == "PAYMENT_NOT_FOUND"
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "store")) as ch:
        mine = await api_grpc.PaymentServiceStub(ch).GetPayment(api.GetPaymentRequest(payment_id=wanted), timeout=5)
    assert mine.payment.status == types_pb2.PAYMENT_STATUS_APPLIED


async def test_a_channel_is_only_ever_sent_its_own_confirmations(mesh, pki_dir, store_payment):
    own = await submit(mesh, pki_dir, "atm", order("sec-atm-own", open_loans(types_pb2.LOAN_TYPE_CASH)[8]))
    channels, seen = set(), set()
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, ATM) as ch:
        call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(conf_api.SubscribeRequest(
            start_position=conf_api.START_POSITION_BEGINNING), timeout=10)
        async for event in call:
            channels |= {c.channel for c in event.batch.confirmations}
            seen |= {c.payment_id for c in event.batch.confirmations}
            if own.payment_id in seen:
                break
        call.cancel()
    assert own.payment_id in seen
    assert channels == {types_pb2.CHANNEL_ATM} and store_payment.payment_id not in seen
