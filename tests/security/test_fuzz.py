"""Random requests (hypothesis) against a running router and a running loan core, over
real mTLS: nothing crashes a service, and every answer is a success, a refusal with
a clear status and reason, or (on the core's stream) a Rejection.

Bounded: 150 examples per property (40 for the multi-payment ones), no hypothesis
database; PAYMESH_FUZZ_EXAMPLES=1500 runs ten times as many (a longer hunt, by hand).
"""

import itertools
import os
from collections import Counter

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, assume, event, example, given, settings, strategies as st

from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc, payments_pb2
from paymesh_tools.simulate_day import batch_requests
from paymesh import pki, tls
from paymesh.errors import error_info
from paymesh.topology import OPERATOR, ROUTER, Identity
from tests.harness import start_mesh, stop_mesh
from tests.channel_calls import AS_OF, ENV, open_loans

EXAMPLES = int(os.environ.get("PAYMESH_FUZZ_EXAMPLES") or 150)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEWER = settings(FUZZ, max_examples=max(10, EXAMPLES * 4 // 15))
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAVAILABLE}
CASH_LOANS = open_loans(types_pb2.LOAN_TYPE_CASH)[:20] + open_loans(types_pb2.LOAN_TYPE_CASH, "USD")[:5]
INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
VALID_KEYS = itertools.count()

# Protobuf strings are UTF-8: anything but lone surrogates.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
keys = st.one_of(st.just(""), text, st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
                 st.text("ab", min_size=65, max_size=300))
loan_ids = st.one_of(st.sampled_from(CASH_LOANS), st.sampled_from(["MTG-000001", "VEH-000002", "CSH-999999"]),
                     st.from_regex(r"(CSH|MTG|VEH|XYZ|csh)-?[0-9]{0,9}", fullmatch=True), text)
currencies = st.one_of(st.sampled_from(["PEN", "USD", "EUR", "", "pen", "PENN"]), text)
amounts = st.one_of(st.integers(1, 600_000), INT64)
modes = st.one_of(st.sampled_from(types_pb2.PrepaymentMode.values()), INT32)
dates = st.one_of(st.just(AS_OF), st.sampled_from(["", "2026-02-30", "2026-13-01", "20261127", "9999-12-31"]), text)


def _order(key, loan, currency, amount, mode, reference) -> payments_pb2.PaymentOrder:
    return payments_pb2.PaymentOrder(
        idempotency_key=key, loan_id=loan, amount=types_pb2.Money(currency_code=currency, amount_minor=amount),
        prepayment_mode=mode, channel_reference=reference)


# Half wild, half plausible (so the paths past validation are fuzzed too).
orders = st.one_of(
    st.builds(_order, keys, loan_ids, currencies, amounts, modes, text),
    st.builds(_order, st.from_regex(r"[a-z0-9]{8,20}", fullmatch=True), st.sampled_from(CASH_LOANS),
              st.sampled_from(["PEN", "USD"]), st.integers(1, 600_000),
              st.sampled_from(types_pb2.PrepaymentMode.values()),
              st.from_regex(r"[ -~]{0,70}", fullmatch=True)))
loan_payments = st.builds(
    lambda payment_id, loan, currency, amount, mode, day, channel: core_api.LoanPayment(
        payment_id=payment_id, loan_id=loan, amount=types_pb2.Money(currency_code=currency, amount_minor=amount),
        prepayment_mode=mode, business_date=day, channel=channel),
    keys, loan_ids, currencies, amounts, modes, dates, st.one_of(st.sampled_from([1, 2, 3, 4, 5]), INT32))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, pki_dir):
    services = start_mesh(tmp_path_factory.mktemp("fuzz"), pki_dir,
                          only=("core-cash", "confirmations", "payment-router"), **ENV)
    yield services
    stop_mesh(services)


def seen(label: str, answers: Counter) -> None:
    """Counts an answer's kind (and tells hypothesis, for --hypothesis-show-statistics)."""
    event(label)
    answers[label] += 1


def sync_channel(mesh, pki_dir, service: str, identity: Identity) -> grpc.Channel:
    credentials = tls.channel_credentials(pki.load(pki_dir, identity))
    return grpc.secure_channel(mesh[service].address, credentials, options=tls.CHANNEL_OPTIONS)


@pytest.fixture(scope="module")
def router(mesh, pki_dir):
    with sync_channel(mesh, pki_dir, "payment-router", Identity("channel", "agent")) as channel:
        yield api_grpc.PaymentServiceStub(channel)


@pytest.fixture(scope="module")
def core(mesh, pki_dir):
    with sync_channel(mesh, pki_dir, "core-cash", ROUTER) as channel:
        yield core_grpc.LoanCoreServiceStub(channel)


def assert_clear_refusal(error: grpc.RpcError, answers: Counter) -> None:
    seen(error.code().name, answers)
    assert error.code() in REFUSALS, (error.code(), error.details())
    assert error.details() and (info := error_info(error)) is not None and info.reason


def assert_still_serving(mesh, pki_dir, router, core) -> None:
    """Every process alive, SERVING, and a valid payment still applied end to end."""
    for name, service in mesh.items():
        assert service.process.poll() is None, f"{name} died:\n{service.log()[-3000:]}"
        with sync_channel(mesh, pki_dir, name, OPERATOR) as channel:
            # types-grpcio-health-checking declares HealthStub without its methods (Check, Watch).
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    valid = payments_pb2.PaymentOrder(idempotency_key=f"fuzz-valid-{next(VALID_KEYS)}", loan_id=CASH_LOANS[0],
                                      amount=types_pb2.Money(currency_code="PEN", amount_minor=100))
    answer = router.SubmitPayment(api.SubmitPaymentRequest(payment=valid), timeout=10)
    assert answer.payment.status == types_pb2.PAYMENT_STATUS_APPLIED
    assert core.GetLoan(core_api.GetLoanRequest(loan_id=CASH_LOANS[0], as_of_date=AS_OF), timeout=5).loan.loan_id


def test_random_orders_submitted_online_get_a_payment_or_a_clear_refusal(mesh, pki_dir, router, core):
    answers = Counter()

    @FUZZ
    @given(order=orders)
    def submit(order):
        try:
            payment = router.SubmitPayment(api.SubmitPaymentRequest(payment=order), timeout=10).payment
        except grpc.RpcError as error:
            assert_clear_refusal(error, answers)
        else:
            seen("APPLIED", answers)
            assert payment.status == types_pb2.PAYMENT_STATUS_APPLIED and payment.payment_id.startswith("PAY-")

    submit()
    assert answers["APPLIED"] and answers["INVALID_ARGUMENT"], answers  # both paths were exercised
    assert_still_serving(mesh, pki_dir, router, core)


def test_random_orders_on_the_stream_are_each_answered_and_the_stream_goes_on(mesh, pki_dir, router, core):
    answers = Counter()

    @FEWER
    @given(batch=st.lists(orders, min_size=1, max_size=8))
    def stream(batch):
        replies = [r.payment for r in router.StreamPayments(
            iter(api.StreamPaymentsRequest(payment=o) for o in batch), timeout=20)]
        assert len(replies) == len(batch)
        for payment in replies:
            seen(types_pb2.PaymentStatus.Name(payment.status), answers)
            assert payment.status in (types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REJECTED)
            if payment.status == types_pb2.PAYMENT_STATUS_REJECTED:
                assert payment.rejection.reason and payment.rejection.message

    stream()
    assert answers["PAYMENT_STATUS_APPLIED"] and answers["PAYMENT_STATUS_REJECTED"], answers
    assert_still_serving(mesh, pki_dir, router, core)


def test_random_batch_files_are_applied_line_by_line_or_refused_whole(mesh, pki_dir, router, core):
    answers = Counter()

    # One file surely well formed: random ones are mostly refused whole (one bad line is enough), and
    # 40 of them all refused happened once.
    well_formed = [payments_pb2.PaymentOrder(idempotency_key="fuzz-ok-1", loan_id=CASH_LOANS[0],
                                             amount=types_pb2.Money(currency_code="PEN", amount_minor=10_00))]

    @FEWER
    @given(batch_id=keys, lines=st.lists(orders, max_size=6), miscount=st.booleans())
    @example(batch_id="fuzz-ok-file", lines=well_formed, miscount=False)
    def upload(batch_id, lines, miscount):
        try:
            requests = batch_requests(batch_id[:40], AS_OF, lines)
        except ValueError:  # a control total past int64 cannot even be written in the trailer
            assume(False)
        requests[-1].trailer.line_count += miscount
        try:
            reply = router.UploadBatch(iter(requests), timeout=30)
        except grpc.RpcError as error:
            assert_clear_refusal(error, answers)
            return
        seen("OK", answers)
        assert not miscount and reply.summary.line_count == len(lines) == len(reply.results)
        assert reply.summary.applied_count + reply.summary.rejected_count == len(lines)

    upload()
    assert answers["OK"] and answers["INVALID_ARGUMENT"], answers
    assert_still_serving(mesh, pki_dir, router, core)


def test_random_lookups_and_reversals_get_an_answer_or_a_clear_refusal(mesh, pki_dir, router, core):
    answers = Counter()

    @FUZZ
    @given(payment_id=st.one_of(keys, st.just("PAY-" + "0" * 32)), key=keys, reason=text)
    def look_up_and_reverse(payment_id, key, reason):
        for call, request in ((router.GetPayment, api.GetPaymentRequest(payment_id=payment_id)),
                              (router.ReversePayment, api.ReversePaymentRequest(
                                  idempotency_key=key, payment_id=payment_id, reason=reason))):
            try:
                call(request, timeout=10)
                seen("OK", answers)
            except grpc.RpcError as error:
                assert_clear_refusal(error, answers)

    look_up_and_reverse()
    assert answers["NOT_FOUND"], answers
    assert_still_serving(mesh, pki_dir, router, core)


def test_random_payments_on_the_cores_stream_are_each_applied_or_rejected(mesh, pki_dir, router, core):
    answers = Counter()

    @FUZZ
    @given(payments=st.lists(loan_payments, min_size=1, max_size=5))
    def apply(payments):
        replies = list(core.ApplyPayments(iter([core_api.ApplyPaymentsRequest(payments=payments)]), timeout=20))
        outcomes = [o for r in replies for o in r.outcomes]
        assert [o.payment_id for o in outcomes] == [p.payment_id for p in payments]
        for outcome in outcomes:
            seen(outcome.WhichOneof("result") or "no result", answers)
            assert outcome.WhichOneof("result") in ("applied", "rejection")
            if outcome.HasField("rejection"):
                assert outcome.rejection.reason and outcome.rejection.message

    apply()
    assert answers["applied"] and answers["rejection"], answers
    assert_still_serving(mesh, pki_dir, router, core)


def test_random_loan_lookups_at_the_core_get_a_loan_or_a_clear_refusal(mesh, pki_dir, router, core):
    answers = Counter()

    @FUZZ
    @given(loan_id=loan_ids, as_of=dates)
    def get_loan(loan_id, as_of):
        try:
            loan = core.GetLoan(core_api.GetLoanRequest(loan_id=loan_id, as_of_date=as_of), timeout=10).loan
        except grpc.RpcError as error:
            assert_clear_refusal(error, answers)
        else:
            seen("OK", answers)
            assert loan.loan_id == loan_id

    get_loan()
    assert answers["OK"] and answers["INVALID_ARGUMENT"], answers
    assert_still_serving(mesh, pki_dir, router, core)
