"""The attack matrix on the real mesh (every service its own process, real mTLS): each
attack is refused with the right status, and the whole mesh's state, read by the
operator from every stage, is exactly what it was before."""

import asyncio
import ssl
from contextlib import asynccontextmanager

import grpc
import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.confirmations.v1 import confirmations_pb2
from bank.ledger.v1 import ledger_pb2, mainframe_bridge_service_pb2 as bridge_api
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc
from mainframe_bridge import records
from mainframe_bridge.framing import PING, PONG
from paymesh_tools.simulate_day import batch_requests
from payment_router.batch import MAX_LINES
from paymesh_tools.dev_tokens import mint
from paymesh import tls
from paymesh.errors import error_info, retry_delay
from paymesh.topology import BRIDGE, OPERATOR, ROUTER, SERVICES, Identity, router_identity
from tests.harness import start_mesh, start_service, stop_mesh
from tests.security.support import (ATM, BAD_TOKENS, bad_credentials, emulator_context, emulator_exchange, grpc_channel,
                                    health, identity_context, settled_state, slow_atm_policy)
from tests.channel_calls import AS_OF, ENV, confirmations_of, open_loans, order, refused, submit

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


def mainframe_posting(posting_id: str, amount_minor: int) -> bytes:
    """A balanced ATM cash posting of the day on VICTIM's product, as the mainframe's record."""
    return records.encode_posting(records.PostingRecord(
        posting_id, int(AS_OF.replace("-", "")), posting_id, types_pb2.CHANNEL_ATM, types_pb2.LOAN_TYPE_CASH,
        (records.Entry("E1", "110504", "D", "PEN", amount_minor),
         records.Entry("E2", "140101", "C", "PEN", amount_minor))))


def applied_confirmation(payment_id: str, channel: types_pb2.Channel) -> confirmations_pb2.Confirmation:
    return confirmations_pb2.Confirmation(
        payment_id=payment_id, channel=channel, loan_id=VICTIM, status=types_pb2.PAYMENT_STATUS_APPLIED,
        business_date=AS_OF, amount=types_pb2.Money(currency_code="PEN", amount_minor=100_000))


def assert_caller_not_allowed(error: grpc.aio.AioRpcError):
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    info = error_info(error)
    assert info is not None and info.reason == "CALLER_NOT_ALLOWED"


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
    forged = applied_confirmation("PAY-forged-confirmation", types_pb2.CHANNEL_ATM)
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["confirmations"].address, pki_dir, ATM) as ch:
            stub = conf_grpc.ConfirmationServiceStub(ch)
            assert_caller_not_allowed(await denied(stub.PublishConfirmations(
                iter([conf_api.PublishConfirmationsRequest(confirmations=[forged])]), timeout=5)))
            assert_caller_not_allowed(await denied(stub.SummarizeConfirmations(
                conf_api.SummarizeConfirmationsRequest(business_date=AS_OF), timeout=5)))


async def test_a_channel_certificate_cannot_talk_to_the_mainframe(mesh, pki_dir, store_payment):
    posting = mainframe_posting("PAY-forged-mainframe", 100_000)
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


def _absurd(**fields) -> api.SubmitPaymentRequest:
    payment = order("sec-absurd-1", VICTIM)
    for name, value in fields.items():
        target = payment.amount if name in ("currency_code", "amount_minor") else payment
        setattr(target, name, value)
    return api.SubmitPaymentRequest(payment=payment)


ABSURD_FIELDS = [dict(idempotency_key="k" * 2**20), dict(loan_id="CSH-" + "9" * 2**20),
                 dict(channel_reference="r" * 2**20), dict(currency_code="P" * 2**20),
                 dict(amount_minor=2**63 - 1), dict(amount_minor=-(2**63)), dict(prepayment_mode=2**31 - 1)]


async def test_oversized_messages_and_absurd_fields_are_refused_and_every_service_stays_healthy(
        mesh, pki_dir, store_payment):
    huge = "x" * OVER_RECEIVE_LIMIT
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            error = await denied(stub.SubmitPayment(_absurd(channel_reference=huge), timeout=10))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            for fields in ABSURD_FIELDS:
                error = await denied(stub.SubmitPayment(_absurd(**fields), timeout=10))
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (list(fields), error.details())
                assert error_info(error).reason in ("INVALID_FIELD", "AMOUNT_OVER_CHANNEL_LIMIT")
            too_many = [order("", VICTIM, 100)] * (MAX_LINES + 1)
            error = await denied(stub.UploadBatch(iter(batch_requests("sec-huge-file", AS_OF, too_many, 10_000)),
                                                  timeout=30))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most" in error.details()
        async with tls.channel_for(mesh["core-cash"].address, pki_dir, ROUTER) as ch:
            huge_payment = core_api.LoanPayment(payment_id="PAY-huge", loan_id=huge, business_date=AS_OF)
            error = await denied(core_grpc.LoanCoreServiceStub(ch).ApplyPayments(
                iter([core_api.ApplyPaymentsRequest(payments=[huge_payment])]), timeout=10))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        async with tls.channel_for(mesh["confirmations"].address, pki_dir, ATM) as ch:
            stub = conf_grpc.ConfirmationServiceStub(ch)
            error = await denied(stub.Subscribe(conf_api.SubscribeRequest(consumer_name=huge), timeout=10))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            error = await denied(stub.Subscribe(conf_api.SubscribeRequest(consumer_name="c" * 2**20), timeout=10))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    for name in GRPC_SERVICES:
        assert await health(tls.channel_for(mesh[name].address, pki_dir, OPERATOR)) == "SERVING", name
    after = await submit(mesh, pki_dir, "agent", order("sec-after-absurd", open_loans(types_pb2.LOAN_TYPE_CASH)[9]))
    assert after.status == types_pb2.PAYMENT_STATUS_APPLIED


@pytest.fixture
def slow_atm_router(mesh, pki_dir, tmp_path):
    """A second router replica on the same peers whose policy lets the ATM channel 5 payments/s (burst 5)."""
    peers = {f"{SERVICES[name].env_prefix}_ADDR": service.address for name, service in mesh.items()}
    router = start_service("payment-router", tmp_path, pki_dir, **ENV, **peers,
                           PAYMESH_CHANNEL_POLICY=str(slow_atm_policy(tmp_path, rate=5, burst=5)))
    yield router
    router.kill()


async def applied_at_the_core(mesh, pki_dir) -> int:
    async with tls.channel_for(mesh["core-cash"].address, pki_dir, OPERATOR) as ch:
        day = await core_grpc.LoanCoreServiceStub(ch).ListAppliedPayments(
            core_api.ListAppliedPaymentsRequest(business_date=AS_OF), timeout=5)
    return day.payment_count


async def test_a_flood_over_the_channels_rate_is_resource_exhausted_with_a_retry_delay(mesh, pki_dir, slow_atm_router):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)[40:70]
    before = await applied_at_the_core(mesh, pki_dir)
    async with tls.channel_for(slow_atm_router.address, pki_dir, ATM) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        results = await asyncio.gather(*(stub.SubmitPayment(api.SubmitPaymentRequest(
            payment=order(f"sec-flood-{i}", loans[i % len(loans)], 100)), timeout=10) for i in range(40)),
            return_exceptions=True)
        served = [r for r in results if isinstance(r, api.SubmitPaymentResponse)]
        limited = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(served) + len(limited) == 40 and 1 <= len(served) <= 10, results
        for error in limited:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and error_info(error).reason == "RATE_LIMITED"
            assert 0 < retry_delay(error) <= 1.0
        assert await applied_at_the_core(mesh, pki_dir) == before + len(served)  # a refused one wrote nothing
        await asyncio.sleep(max(retry_delay(e) for e in limited))
        again = await stub.SubmitPayment(api.SubmitPaymentRequest(payment=order("sec-flood-0b", loans[0], 100)),
                                         timeout=10)
        assert again.payment.status == types_pb2.PAYMENT_STATUS_APPLIED  # served again once the delay passed
        await asyncio.sleep(1.2)  # a full bucket again
        call = stub.StreamPayments(iter(api.StreamPaymentsRequest(payment=order(f"sec-flood-s{i}", loans[i], 100))
                                        for i in range(20)), timeout=20)
        answers = [r.payment async for r in call]
    assert len(answers) == 20  # the stream answered every payment and went on
    over = [p for p in answers if p.status == types_pb2.PAYMENT_STATUS_REJECTED]
    assert 10 <= len(over) <= 15 and all(p.rejection.reason == errors_pb2.ERROR_REASON_RATE_LIMITED for p in over)
    assert await applied_at_the_core(mesh, pki_dir) == before + len(served) + 1 + 20 - len(over)


def customer(pki_dir, subject: str, channel: str = "internet-banking"):
    return (("authorization", "Bearer " + mint(pki_dir, subject, channel=channel)),)


async def test_a_digital_customer_never_reaches_another_customers_payment(mesh, pki_dir, store_payment):
    """OWASP API1. The old router checked only the channel: C-2 read C-1's payment, and C-2 sending
    C-1's idempotency key and body got C-1's payment back (and its outstanding balance)."""
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[9]
    c1 = await submit(mesh, pki_dir, "internet-banking", order("sec-own-key", loan), customer(pki_dir, "C-1"))
    assert c1.status == types_pb2.PAYMENT_STATUS_APPLIED and c1.customer_id == "C-1"
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "internet-banking")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        # C-2 asks for C-1's payment by id: NOT_FOUND, exactly like an id that does not exist.
        stolen = await denied(stub.GetPayment(api.GetPaymentRequest(payment_id=c1.payment_id),
                                              metadata=customer(pki_dir, "C-2"), timeout=5))
        unknown = await denied(stub.GetPayment(api.GetPaymentRequest(payment_id="PAY-" + "0" * 32),
                                               metadata=customer(pki_dir, "C-2"), timeout=5))
        assert (stolen.code(), error_info(stolen).reason) == (unknown.code(), error_info(unknown).reason) == (
            grpc.StatusCode.NOT_FOUND, "PAYMENT_NOT_FOUND")
        # The same words too: nothing tells C-2 the payment exists.
        assert stolen.details().replace(c1.payment_id, "?") == unknown.details().replace("PAY-" + "0" * 32, "?")
        # C-1 still reads it.
        mine = await stub.GetPayment(api.GetPaymentRequest(payment_id=c1.payment_id),
                                     metadata=customer(pki_dir, "C-1"), timeout=5)
        assert mine.payment.payment_id == c1.payment_id
    # C-2 sending C-1's key and body is C-2's own payment, never C-1's.
    c2 = await submit(mesh, pki_dir, "internet-banking", order("sec-own-key", loan), customer(pki_dir, "C-2"))
    assert c2.payment_id != c1.payment_id and c2.customer_id == "C-2"


def test_a_payment_id_cannot_be_worked_out_from_its_key():
    """The old ids were uuid5 of (channel, key): anyone knowing a key knew the payment's id."""
    import uuid

    from payment_router.orders import PaymentIds
    ids = PaymentIds(b"k" * 32)
    old_style = "PAY-" + uuid.uuid5(uuid.UUID("6f1c1a52-3d1e-4c55-9a53-7b0c6f1d2e01"), "atm\nkey-1").hex
    assert ids.of("atm", "key-1") != old_style
    assert ids.of("atm", "key-1") == PaymentIds(b"k" * 32).of("atm", "key-1")  # every replica agrees
    assert ids.of("atm", "key-1") != PaymentIds(b"j" * 32).of("atm", "key-1")  # the secret decides
    assert ids.of("app", "key-1", "C-1") != ids.of("app", "key-1", "C-2")


def day_file(batch_id: str, lines, declared: list[tuple[str, int]]):
    numbered = [api.BatchLine(line_number=n, payment=o) for n, o in enumerate(lines, 1)]
    return [api.UploadBatchRequest(header=api.BatchHeader(batch_id=batch_id, business_date=AS_OF)),
            api.UploadBatchRequest(lines=api.BatchLines(lines=numbered)),
            api.UploadBatchRequest(trailer=api.BatchTrailer(line_count=len(lines), control_totals=[
                types_pb2.Money(currency_code=c, amount_minor=a) for c, a in declared]))]


async def test_a_day_file_never_half_applies(mesh, pki_dir, store_payment):
    """The old router applied a file's valid first line, then failed UNKNOWN ("Value out of range") on
    two lines of -2^63 whose totals the trailer check ignored; every re-upload failed the same way."""
    good = order("sec-half-1", VICTIM, 1_000)
    poison = [order(f"sec-half-{n}", VICTIM, -(2 ** 63)) for n in (2, 3)]
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        async with nothing_changes(mesh, pki_dir):
            for _attempt in range(2):  # a re-upload is answered the same, clearly
                error = await denied(stub.UploadBatch(iter(day_file("sec-half", [good, *poison], [("PEN", 1_000)])),
                                                      timeout=10))
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
                assert ("nothing was applied" in error.details()
                        and "line[2].payment.amount.amount_minor" in error.details())
            # Totals of zero or less are totals too: a trailer must declare exactly what the file holds.
            error = await denied(stub.UploadBatch(iter(day_file(
                "sec-zero", [good], [("PEN", 1_000), ("USD", 0)])), timeout=10))
            assert (error.code() == grpc.StatusCode.INVALID_ARGUMENT
                    and error_info(error).reason == "CONTROL_TOTAL_MISMATCH")
            error = await denied(stub.UploadBatch(iter(day_file(
                "sec-twice", [good], [("PEN", 1_000), ("PEN", 0)])), timeout=10))
            assert error_info(error).reason == "CONTROL_TOTAL_MISMATCH"
        # Business refusals stay per line: the same file without the poison applies its line.
        reply = await stub.UploadBatch(iter(day_file("sec-half-ok", [good], [("PEN", 1_000)])), timeout=10)
    assert reply.summary.line_count == 1 and reply.summary.applied_count + reply.summary.rejected_count == 1


async def test_a_failure_inside_a_service_never_shows_its_internals(tmp_path, pki_dir, settings):
    """An unexpected exception in a handler was answered UNKNOWN with its own text (paths, values)."""
    from paymesh.authz import CallerPolicy
    from paymesh.server import Handlers, start_server

    async def explode(request, context):
        raise ValueError("could not open /var/lib/paymesh/secret-ledger.db at 10.0.0.7:5432")

    def register(server):
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "test.Boom", {"Explode": grpc.unary_unary_rpc_method_handler(explode)})])
        return []

    running = await start_server("core-cash", settings, Handlers(register), CallerPolicy(default=frozenset([OPERATOR])))
    try:
        async with tls.channel_for(f"127.0.0.1:{running.port}", pki_dir, OPERATOR) as ch:
            error = await denied(ch.unary_unary("/test.Boom/Explode")(b"", timeout=5))
    finally:
        await running.stop(0)
    assert error.code() == grpc.StatusCode.INTERNAL, error.details()
    assert "secret-ledger" not in error.details() and "10.0.0.7" not in error.details()
    assert "internal error in Explode" in error.details() and "trace" in error.details()


async def test_a_reversal_with_its_core_down_does_not_show_the_cores_address(tmp_path, pki_dir):
    """The router passed the core's transport error through: "ipv4:127.0.0.1:56061: Failed to connect"."""
    mesh = start_mesh(tmp_path, pki_dir, **ENV)
    try:
        payment = await submit(mesh, pki_dir, "agent", order("sec-rev-down", open_loans(types_pb2.LOAN_TYPE_CASH)[3]))
        mesh["core-cash"].kill()
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
            error = await denied(api_grpc.PaymentServiceStub(ch).ReversePayment(api.ReversePaymentRequest(
                idempotency_key="sec-rev-down-1", payment_id=payment.payment_id, reason="drawer"), timeout=10))
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
        assert error_info(error).reason == "DOWNSTREAM_UNAVAILABLE" and retry_delay(error)
        assert "127.0.0.1" not in error.details() and "ipv4" not in error.details()
    finally:
        stop_mesh(mesh)


async def test_only_the_bridge_posts_to_the_mainframe(mesh, pki_dir, store_payment):
    """The operator's certificate, which `paymesh up` probed with, posted a forged 999,999.00 PEN entry
    straight to the emulator. Now the operator cannot connect, and the probe and the controller, which
    can, may not post: 0040, nothing in the book."""
    from paymesh.topology import EMULATOR_CONTROL, PROBE
    forged = mainframe_posting("PAY-forged-operator", 99_999_900)
    emulator = mesh["mainframe-emulator"].address
    async with nothing_changes(mesh, pki_dir):
        with pytest.raises(HANDSHAKE_REFUSED):
            await emulator_exchange(emulator, identity_context(pki_dir, OPERATOR), [forged])
        for identity in (PROBE, EMULATOR_CONTROL):
            reply, pong = await emulator_exchange(emulator, identity_context(pki_dir, identity), [forged, PING])
            assert records.decode_reply(reply).return_code == records.RC_NOT_ALLOWED and pong == PONG


async def test_reflection_is_the_operators_only(mesh, pki_dir, store_payment):
    """An ATM listed every method of the cores, the bridge and confirmations."""
    from grpc_reflection.v1alpha import reflection_pb2
    from grpc_reflection.v1alpha.reflection_pb2_grpc import ServerReflectionStub
    from paymesh.topology import PROBE

    async def listed(service: str, identity: Identity):
        async with tls.channel_for(mesh[service].address, pki_dir, identity) as ch:
            # types-grpcio-reflection: its stub takes a sync grpc.Channel only, and types the method as
            # binascii.Incomplete (an exception class); grpc's stubs work on an aio channel alike.
            call = ServerReflectionStub(ch).ServerReflectionInfo(  # type: ignore[arg-type, operator]
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
            return [s.name async for r in call for s in r.list_services_response.service]

    for service in GRPC_SERVICES:
        for identity in (ATM, PROBE, ROUTER):
            with pytest.raises(grpc.aio.AioRpcError) as refused_call:
                await listed(service, identity)
            assert refused_call.value.code() == grpc.StatusCode.PERMISSION_DENIED, (service, identity)
        assert await listed(service, OPERATOR), service
        assert await health(tls.channel_for(mesh[service].address, pki_dir, PROBE)) == "SERVING"


@pytest.fixture
def atm_bulkhead(mesh, pki_dir, tmp_path):
    """The ATM group's router bulkhead, as Kubernetes runs it, on the same peers."""
    peers = {f"{SERVICES[name].env_prefix}_ADDR": service.address for name, service in mesh.items()}
    router = start_service("payment-router", tmp_path, pki_dir, **ENV, **peers, PAYMESH_ROUTER_BULKHEAD="atm")
    yield router
    router.kill()


async def test_a_router_bulkhead_serves_and_carries_only_its_own_channels(mesh, pki_dir, store_payment, atm_bulkhead):
    """Every bulkhead held the one router identity, and so every channel's rights: the ATM group's
    router, taken over, could apply, post, confirm and reverse a store's payments. Now each bulkhead
    has its own identity; it serves its group's channels only, and the cores, the bridge and
    confirmations refuse another group's items from it (the rest of a message goes on)."""
    from tests.mainframe_bridge.support import posting
    atm_router, store = router_identity("atm"), types_pb2.CHANNEL_STORE
    foreign_payment = core_api.LoanPayment(
        payment_id="PAY-foreign-core", loan_id=VICTIM, business_date=AS_OF, value_date=AS_OF, channel=store,
        amount=types_pb2.Money(currency_code="PEN", amount_minor=100_000))
    foreign_confirmation = applied_confirmation("PAY-foreign-confirmation", store)
    async with nothing_changes(mesh, pki_dir):
        async with tls.channel_for(mesh["core-cash"].address, pki_dir, atm_router) as ch:
            stub = core_grpc.LoanCoreServiceStub(ch)
            (answer,) = [r async for r in stub.ApplyPayments(
                iter([core_api.ApplyPaymentsRequest(payments=[foreign_payment])]), timeout=5)]
            assert answer.outcomes[0].rejection.reason == errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED
            assert_caller_not_allowed(await denied(stub.ReversePayment(core_api.ReversePaymentRequest(
                reversal_id="REV-foreign", payment_id=store_payment.payment_id, business_date=AS_OF,
                reason="taken over"), timeout=5)))
        async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir, atm_router) as ch:
            (answer,) = [r async for r in bridge_grpc.MainframeBridgeServiceStub(ch).PostEntries(
                iter([bridge_api.PostEntriesRequest(postings=[posting(1, channel=store, date=AS_OF)])]), timeout=5)]
            assert answer.acks[0].status == ledger_pb2.POSTING_STATUS_REJECTED
            assert answer.acks[0].rejection.reason == errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED
        async with tls.channel_for(mesh["confirmations"].address, pki_dir, atm_router) as ch:
            (answer,) = [r async for r in conf_grpc.ConfirmationServiceStub(ch).PublishConfirmations(
                iter([conf_api.PublishConfirmationsRequest(confirmations=[foreign_confirmation])]), timeout=5)]
            assert answer.acks[0].rejection.reason == errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED
        async with tls.channel_for(atm_bulkhead.address, pki_dir, Identity("channel", "app")) as ch:
            assert_caller_not_allowed(await denied(api_grpc.PaymentServiceStub(ch).SubmitPayment(
                api.SubmitPaymentRequest(payment=order("sec-app-at-atm", VICTIM)), timeout=5,
                metadata=customer(pki_dir, "C-1", channel="app"))))
    async with tls.channel_for(atm_bulkhead.address, pki_dir, ATM) as ch:  # its own channel, end to end
        served = await api_grpc.PaymentServiceStub(ch).SubmitPayment(api.SubmitPaymentRequest(
            payment=order("sec-atm-at-atm", open_loans(types_pb2.LOAN_TYPE_CASH)[11])), timeout=10)
    assert served.payment.status == types_pb2.PAYMENT_STATUS_APPLIED
    assert served.payment.payment_id in await confirmations_of(mesh, pki_dir, "atm", {served.payment.payment_id})


def test_a_router_with_an_unknown_bulkhead_says_so_and_does_not_start(tmp_path, pki_dir):
    with pytest.raises(RuntimeError, match="no router bulkhead 'vault'; the bulkheads are digital, atm, agent-store"):
        start_service("payment-router", tmp_path, pki_dir, PAYMESH_ROUTER_BULKHEAD="vault")
