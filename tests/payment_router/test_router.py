"""The router end to end: real processes for every service, real mTLS, real stores."""

import asyncio
import contextlib
import re
import time

import grpc
import pytest

from bank.common.v1 import types_pb2
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc, payments_pb2
from loan_core.portfolio import generate
from paymesh_tools.dev_tokens import mint
from paymesh_tools.products import RULES_OF_TYPE
from paymesh import tls
from paymesh.errors import error_info, field_violations
from paymesh.topology import CHANNELS, Identity
from paymesh_tools.launch import START_TIMEOUT
from tests.harness import posting_status, start_mesh, start_service, stop_mesh
from tests.channel_calls import AS_OF, ENV, PORTFOLIO, confirmations_of, open_loans, order, refused, submit, upload


async def test_an_online_payment_from_each_channel_is_applied_and_confirmed_to_that_channel_only(mesh, pki_dir):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)
    paid = {}
    for number, channel in enumerate(CHANNELS):
        payment = await submit(mesh, pki_dir, channel, order(f"each-{channel}", loans[number]))
        assert payment.status == types_pb2.PAYMENT_STATUS_APPLIED, payment
        assert sum(getattr(payment.allocation, f.name) for f in payment.allocation.DESCRIPTOR.fields) == 1500
        assert payment.confirmation_sequence > 0
        paid[channel] = payment.payment_id
    app_payment = await submit(mesh, pki_dir, "app", order("each-app", loans[0]))
    assert app_payment.payment_id == paid["app"] and app_payment.customer_id == "CUST-0001"
    for channel in CHANNELS:
        seen = await confirmations_of(mesh, pki_dir, channel, {paid[channel]})
        assert paid[channel] in seen
        assert not (seen & (set(paid.values()) - {paid[channel]})), f"{channel} saw another channel's payment"


async def test_a_retry_returns_the_same_payment_and_a_changed_body_is_already_exists(mesh, pki_dir):
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[10]
    first = await submit(mesh, pki_dir, "atm", order("retry-1", loan, 2000))
    again = await submit(mesh, pki_dir, "atm", order("retry-1", loan, 2000))
    assert again.payment_id == first.payment_id
    assert again.outstanding_balance == first.outstanding_balance  # applied once: the balance did not move again
    error = await refused(mesh, pki_dir, "atm", order("retry-1", loan, 2001))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(error).reason == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize("case, channel, make, code, reason", [
    ("unknown loan", "atm", lambda: order("bad-1", "CSH-999999"), "NOT_FOUND", "LOAN_NOT_FOUND"),
    ("wrong currency", "atm", lambda: order("bad-2", open_loans(types_pb2.LOAN_TYPE_CASH)[3], 1000, "USD"),
     "FAILED_PRECONDITION", "CURRENCY_MISMATCH"),
    ("over the channel limit", "atm", lambda: order("bad-3", open_loans(types_pb2.LOAN_TYPE_CASH)[3], 300_001),
     "INVALID_ARGUMENT", "AMOUNT_OVER_CHANNEL_LIMIT"),
    ("negative amount", "store", lambda: order("bad-4", open_loans(types_pb2.LOAN_TYPE_CASH)[3], -5),
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("missing fields", "agent", lambda: payments_pb2.PaymentOrder(), "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("key ending in a newline", "atm", lambda: order("bad-5\n", open_loans(types_pb2.LOAN_TYPE_CASH)[3]),
     "INVALID_ARGUMENT", "INVALID_FIELD"),
])
async def test_bad_input_gets_a_clear_status(mesh, pki_dir, case, channel, make, code, reason):
    error = await refused(mesh, pki_dir, channel, make())
    assert (error.code().name, error_info(error).reason) == (code, reason), error.details()
    assert error.details()
    # One naming of the fields, whoever refused: the router's checks and the core's both name the order's.
    assert all(field.startswith("payment.") for field in field_violations(error)), field_violations(error)
    if case == "wrong currency":  # refused by the core, which names its own message's field
        assert field_violations(error) == ["payment.amount.currency_code"]


@pytest.mark.parametrize("case, claims", [
    ("expired", dict(exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)),
    ("wrong audience", dict(aud="someone-else")),
    ("wrong issuer", dict(iss="https://evil.example")),
])
async def test_a_bad_end_user_token_is_unauthenticated(mesh, pki_dir, case, claims):
    metadata = (("authorization", "Bearer " + mint(pki_dir, "CUST-0001", "app", **claims)),)
    error = await refused(mesh, pki_dir, "app", order(f"jwt-{case}", open_loans(types_pb2.LOAN_TYPE_CASH)[4]), metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()


async def test_a_missing_or_unsigned_token_is_unauthenticated(mesh, pki_dir):
    import jwt

    unsigned = jwt.encode({"sub": "CUST-0001", "iss": "https://login.paymesh.bank", "aud": "paymesh-payments",
                           "exp": int(time.time()) + 600, "nbf": int(time.time())}, key=None, algorithm="none")
    for metadata in (None, (("authorization", "Bearer " + unsigned),)):
        error = await refused(mesh, pki_dir, "internet-banking", order("jwt-none", "CSH-000001"), metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_another_channels_payment_is_not_found(mesh, pki_dir):
    payment = await submit(mesh, pki_dir, "store", order("mine-1", open_loans(types_pb2.LOAN_TYPE_CASH)[20]))
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "atm")) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await api_grpc.PaymentServiceStub(ch).GetPayment(api.GetPaymentRequest(payment_id=payment.payment_id))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "store")) as ch:
        mine = await api_grpc.PaymentServiceStub(ch).GetPayment(api.GetPaymentRequest(payment_id=payment.payment_id))
    assert mine.payment.status == types_pb2.PAYMENT_STATUS_APPLIED


async def test_the_stream_answers_every_payment_and_a_bad_one_does_not_end_it(mesh, pki_dir):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)[30:60]
    orders = [order(f"stream-{i}", loans[i % len(loans)], 700) for i in range(200)]
    orders.insert(50, order("stream-bad", "CSH-999999"))
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
        call = api_grpc.PaymentServiceStub(ch).StreamPayments(
            iter([api.StreamPaymentsRequest(payment=o) for o in orders]), timeout=60)
        answers = {r.payment.idempotency_key: r.payment async for r in call}
    assert len(answers) == len(orders)
    assert answers["stream-bad"].rejection.reason and answers["stream-bad"].status == types_pb2.PAYMENT_STATUS_REJECTED
    assert sum(p.status == types_pb2.PAYMENT_STATUS_APPLIED for p in answers.values()) == 200
    # Each result says where it stands in the channel's confirmations, as online results do (it was 0).
    assert all(p.confirmation_sequence > 0 for p in answers.values()), "a stream result without its sequence"


async def test_the_stream_takes_many_orders_per_message_and_answers_them_in_kind(mesh, pki_dir):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)[30:60]
    orders = [order(f"stream-many-{i}", loans[i % len(loans)], 800) for i in range(300)]
    orders[123] = order("stream-many-bad", "CSH-999999")
    messages = [api.StreamPaymentsRequest(payments=orders[i:i + 50]) for i in range(0, 300, 50)]
    messages.append(api.StreamPaymentsRequest(payment=order("stream-one", loans[0], 800)))
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
        responses = [r async for r in api_grpc.PaymentServiceStub(ch).StreamPayments(iter(messages), timeout=60)]
    grouped = [p for r in responses for p in r.payments]
    alone = [r.payment for r in responses if r.HasField("payment")]
    assert sorted(p.idempotency_key for p in grouped) == sorted(o.idempotency_key for o in orders)
    assert [p.idempotency_key for p in alone] == ["stream-one"]
    assert len(responses) < 300  # results travel together, not one message each
    assert {p.idempotency_key for p in grouped if p.status == types_pb2.PAYMENT_STATUS_REJECTED} == {"stream-many-bad"}


async def test_a_batch_applies_each_line_once_even_when_uploaded_again(mesh, pki_dir):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)[60:90]
    orders = [order("", loans[i % len(loans)], 900 + i) for i in range(300)]
    orders[7] = order("", "CSH-999999")
    first = await upload(mesh, pki_dir, "agent", "agent-file-1", orders)
    assert (first.summary.line_count, first.summary.applied_count, first.summary.rejected_count) == (300, 299, 1)
    assert [r.line_number for r in first.results] == list(range(1, 301))
    assert first.results[7].payment.rejection.reason  # line 8, with its reason
    again = await upload(mesh, pki_dir, "agent", "agent-file-1", orders)
    assert again.summary.replayed_count == 300
    assert [r.payment.payment_id for r in again.results] == [r.payment.payment_id for r in first.results]
    assert ([r.payment.outstanding_balance for r in again.results]
            == [r.payment.outstanding_balance for r in first.results])


async def test_a_big_files_answer_fits_a_clients_default_limit_and_the_rest_comes_in_pages(mesh, pki_dir):
    """The whole file's results came in one answer, 170-240 bytes a line: above about 17,000 lines it
    passed the 4 MiB every gRPC client receives by default, after every line was applied."""
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)
    orders = [order("", loans[n % len(loans)], 100 + n % 7) for n in range(5_200)]
    reply = await upload(mesh, pki_dir, "agent", "agent-big-file", orders)
    assert reply.summary.line_count == 5_200 and reply.ByteSize() < 4 * 1024 * 1024
    assert [r.line_number for r in reply.results] == list(range(1, 5_001)) and reply.next_page_token
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        results, token = list(reply.results), reply.next_page_token
        while token:
            page = await stub.ListBatchResults(api.ListBatchResultsRequest(
                batch_id="agent-big-file", page_size=150, page_token=token), timeout=10)
            assert len(page.results) <= 150
            results.extend(page.results)
            token = page.next_page_token
        assert [r.line_number for r in results] == list(range(1, 5_201))
        last = results[-1].payment
        found = (await stub.GetPayment(api.GetPaymentRequest(payment_id=last.payment_id), timeout=5)).payment
        last.ClearField("confirmation_sequence")  # (GetPayment may know it already, the page not yet)
        found.ClearField("confirmation_sequence")
        assert last == found and last.status == types_pb2.PAYMENT_STATUS_APPLIED
        with pytest.raises(grpc.aio.AioRpcError) as bad_token:
            await stub.ListBatchResults(api.ListBatchResultsRequest(batch_id="agent-big-file", page_token="x"))
        assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "store")) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as other:  # another channel's file does not exist for it
            await api_grpc.PaymentServiceStub(ch).ListBatchResults(
                api.ListBatchResultsRequest(batch_id="agent-big-file"), timeout=5)
    assert other.value.code() == grpc.StatusCode.NOT_FOUND and error_info(other.value).reason == "BATCH_NOT_FOUND"


async def test_a_batch_whose_trailer_does_not_match_is_refused_whole(mesh, pki_dir):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)
    orders = [order("", loans[i], 1000) for i in range(5)]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await upload(mesh, pki_dir, "store", "store-bad-trailer", orders, trailer_count=6)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error.value).reason == "CONTROL_TOTAL_MISMATCH"
    fixed = await upload(mesh, pki_dir, "store", "store-bad-trailer", orders)
    assert fixed.summary.applied_count == 5 and fixed.summary.replayed_count == 0  # nothing applied the first time


async def test_a_channel_may_only_use_its_operations(mesh, pki_dir):
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await upload(mesh, pki_dir, "atm", "atm-file", [order("", "CSH-000001")])
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error.value).reason == "OPERATION_NOT_ALLOWED"


async def test_a_store_reverses_its_payment_and_the_loan_is_back(mesh, pki_dir):
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[-1]
    payment = await submit(mesh, pki_dir, "store", order("drawer-1", loan, 4000))
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "store")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        request = api.ReversePaymentRequest(idempotency_key="drawer-1-rev", payment_id=payment.payment_id,
                                            reason="cash drawer did not balance")
        reversed_payment = (await stub.ReversePayment(request, timeout=10)).payment
        again = (await stub.ReversePayment(request, timeout=10)).payment
    assert reversed_payment.status == again.status == types_pb2.PAYMENT_STATUS_REVERSED
    expected = payment.outstanding_balance.amount_minor + payment.allocation.principal_minor \
        + payment.allocation.prepayment_minor
    assert reversed_payment.outstanding_balance.amount_minor == expected


async def test_a_reversal_the_core_refuses_reaches_the_channel_with_the_cores_details(mesh, pki_dir):
    """The router answered the core's refusal with its code, sentence and reason but dropped the rest
    of its status (the BadRequest naming the field), so a channel could not tell what to change."""
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[-2]
    first = await submit(mesh, pki_dir, "store", order("chain-1", loan, 1000))
    second = await submit(mesh, pki_dir, "store", order("chain-2", loan, 1000))
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "store")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        await stub.ReversePayment(api.ReversePaymentRequest(
            idempotency_key="chain-rev", payment_id=first.payment_id, reason="wrong loan"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as error:  # the same reversal key for another payment
            await stub.ReversePayment(api.ReversePaymentRequest(
                idempotency_key="chain-rev", payment_id=second.payment_id, reason="wrong loan"), timeout=10)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS, error.value.details()
    assert error_info(error.value).reason == "IDEMPOTENCY_KEY_REUSED"
    assert field_violations(error.value) == ["reversal_id"]
    assert "already used for a different request" in error.value.details()


async def test_a_core_down_answers_unavailable_fast_and_other_cores_go_on(tmp_path, pki_dir):
    services = start_mesh(tmp_path, pki_dir, only=("core-cash", "confirmations", "payment-router"), **ENV)
    try:
        started = time.monotonic()
        error = await refused(services, pki_dir, "atm", order("down-1", open_loans(types_pb2.LOAN_TYPE_MORTGAGE)[0]))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 2.0
        payment = await submit(services, pki_dir, "atm", order("down-2", open_loans(types_pb2.LOAN_TYPE_CASH)[0]))
        assert payment.status == types_pb2.PAYMENT_STATUS_APPLIED
    finally:
        stop_mesh(services)


async def test_an_applied_payment_is_posted_at_the_mainframe_and_summarized_for_the_operator(mesh, pki_dir):
    from bank.ledger.v1 import ledger_pb2
    from bank.payments.v1 import payment_operations_service_pb2 as ops_api
    from bank.payments.v1 import payment_operations_service_pb2_grpc as ops_grpc
    from paymesh.topology import OPERATOR

    payment = await submit(mesh, pki_dir, "atm", order("posted-1", open_loans(types_pb2.LOAN_TYPE_CASH)[40], 2500))
    status = await posting_status(mesh["mainframe-bridge"].address, pki_dir, payment.payment_id)
    assert status == ledger_pb2.POSTING_STATUS_POSTED
    request = ops_api.SummarizePaymentsRequest(business_date=AS_OF)
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, OPERATOR) as ch:
        summary = await ops_grpc.PaymentOperationsServiceStub(ch).SummarizePayments(request, timeout=5)
    atm_applied = [t for t in summary.totals if t.channel == types_pb2.CHANNEL_ATM
                   and t.status == types_pb2.PAYMENT_STATUS_APPLIED]
    assert sum(t.count for t in atm_applied) >= 1 and sum(t.amount.amount_minor for t in atm_applied) >= 2500
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "atm")) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await ops_grpc.PaymentOperationsServiceStub(ch).SummarizePayments(request, timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def borrowers_with_loans(count: int = 2) -> dict[str, list[str]]:
    """The seeded portfolio's borrowers holding at least count loans, with their loan ids (in id order)."""
    held: dict[str, list[str]] = {}
    for loan_type in (types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE, types_pb2.LOAN_TYPE_VEHICLE):
        for terms in generate(RULES_OF_TYPE[loan_type], **PORTFOLIO):
            held.setdefault(terms.borrower_id, []).append(terms.loan_id)
    return {borrower: loans for borrower, loans in held.items() if len(loans) >= count}


async def debt(mesh, pki_dir, channel: str, loan_id: str, customer: str = "") -> api.LoanDebt:
    metadata = (("authorization", "Bearer " + mint(pki_dir, customer, channel)),) if customer else None
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", channel)) as ch:
        reply = await api_grpc.PaymentServiceStub(ch).GetLoanDebt(api.GetLoanDebtRequest(loan_id=loan_id),
                                                                   metadata=metadata, timeout=10)
    return reply.debt


async def test_a_channel_asks_what_a_loan_owes_before_it_takes_the_cash(mesh, pki_dir):
    """There was no inquiry: simulate-day and the load users regenerated the portfolio to know what to pay."""
    from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
    from paymesh.topology import OPERATOR

    loan_id = open_loans(types_pb2.LOAN_TYPE_CASH)[5]
    seen = await debt(mesh, pki_dir, "atm", loan_id)
    async with tls.channel_for(mesh["core-cash"].address, pki_dir, OPERATOR) as ch:
        loan = (await core_grpc.LoanCoreServiceStub(ch).GetLoan(core_api.GetLoanRequest(loan_id=loan_id))).loan
    assert (seen.loan_id, seen.currency_code, seen.as_of_date) == (loan_id, loan.currency_code, AS_OF)
    assert seen.amount_due == loan.amount_due and seen.payoff_amount == loan.payoff_amount
    assert seen.overdue.amount_minor + seen.installment_in_course.amount_minor == seen.amount_due.amount_minor
    assert seen.days_past_due == loan.days_past_due and seen.next_due_date
    # What the inquiry said is what the payment takes: paying the amount due leaves nothing due today.
    await submit(mesh, pki_dir, "atm", order("inquired-1", loan_id, seen.amount_due.amount_minor,
                                             seen.currency_code))
    assert (await debt(mesh, pki_dir, "atm", loan_id)).amount_due.amount_minor == 0


async def test_a_digital_customer_sees_only_their_own_loans(mesh, pki_dir):
    customer, loans = next(iter(borrowers_with_loans(2).items()))
    others = next(loan for b, held in borrowers_with_loans(1).items() if b != customer for loan in held)
    for loan_id in loans:
        assert (await debt(mesh, pki_dir, "app", loan_id, customer)).loan_id == loan_id
    # Another customer's loan is not found, exactly like a loan that does not exist (OWASP API1).
    async def refused_inquiry(loan_id):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await debt(mesh, pki_dir, "app", loan_id, customer)
        return error.value.code(), error_info(error.value).reason, error.value.details().replace(loan_id, "?")
    assert await refused_inquiry(others) == await refused_inquiry("CSH-999999")
    assert (await refused_inquiry(others))[:2] == (grpc.StatusCode.NOT_FOUND, "LOAN_NOT_FOUND")
    # Listing: every loan of theirs in the three cores, nobody else's, no personal data.
    metadata = (("authorization", "Bearer " + mint(pki_dir, customer, "app")),)
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "app")) as ch:
        listed = (await api_grpc.PaymentServiceStub(ch).ListCustomerLoans(
            api.ListCustomerLoansRequest(), metadata=metadata, timeout=10)).loans
    assert sorted(d.loan_id for d in listed) == sorted(loans)
    assert customer not in str(listed)
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "atm")) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as not_digital:
            await api_grpc.PaymentServiceStub(ch).ListCustomerLoans(api.ListCustomerLoansRequest(), timeout=10)
    assert not_digital.value.code() == grpc.StatusCode.PERMISSION_DENIED


@contextlib.contextmanager
def router_with_policy(mesh, pki_dir, tmp_path, channel: str, setting: str, operations: str | None = None,
                       **env: str):
    """A second router replica on the mesh's peers, whose channels.toml adds setting to [channel]
    (and gives it operations, a TOML list, in place of its own); env: more of its environment."""
    from payment_router.channel_policy import DEFAULT_POLICY_FILE
    from paymesh.topology import SERVICES

    before, own = DEFAULT_POLICY_FILE.read_text().split(f"[{channel}]\n", 1)
    if operations is not None:
        own = re.sub(r"^operations = .*$", f"operations = {operations}", own, count=1, flags=re.MULTILINE)
    policy = tmp_path / "channels.toml"
    policy.write_text(f"{before}[{channel}]\n{setting}\n{own}")
    peers = {f"{SERVICES[name].env_prefix}_ADDR": service.address for name, service in mesh.items()}
    router = start_service("payment-router", tmp_path, pki_dir, START_TIMEOUT, **{**ENV, **peers, **env},
                           PAYMESH_CHANNEL_POLICY=str(policy))
    try:
        yield router
    finally:
        router.kill()


async def test_a_channel_may_refuse_third_party_payments(mesh, pki_dir, tmp_path):
    """A per-channel policy: with third_party_payments = false the app pays only the customer's own loans."""
    with router_with_policy(mesh, pki_dir, tmp_path, "app", "third_party_payments = false") as router:
        customer, loans = next((b, held) for b, held in borrowers_with_loans(1).items()
                               if held[0] in open_loans(types_pb2.LOAN_TYPE_CASH))
        someone_else = next(loan for loan in open_loans(types_pb2.LOAN_TYPE_CASH) if loan not in loans)
        metadata = (("authorization", "Bearer " + mint(pki_dir, customer, "app")),)
        async with tls.channel_for(router.address, pki_dir, Identity("channel", "app")) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            own = await stub.SubmitPayment(api.SubmitPaymentRequest(payment=order("own-1", loans[0], 1_000)),
                                           metadata=metadata, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as other:
                await stub.SubmitPayment(api.SubmitPaymentRequest(payment=order("other-1", someone_else, 1_000)),
                                         metadata=metadata, timeout=10)
        assert own.payment.status == types_pb2.PAYMENT_STATUS_APPLIED
        assert other.value.code() == grpc.StatusCode.NOT_FOUND and error_info(other.value).reason == "LOAN_NOT_FOUND"


async def test_a_caller_holds_at_most_its_open_streams_and_another_channel_still_pays(mesh, pki_dir, tmp_path):
    """One ATM certificate opened 4,000 idle StreamPayments: nothing refused them (23 KB each in the router)."""
    from paymesh.errors import quota_violations

    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[11]
    with router_with_policy(mesh, pki_dir, tmp_path, "atm", "max_open_streams = 3") as router:
        async with tls.channel_for(router.address, pki_dir, Identity("channel", "atm")) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            held = [stub.StreamPayments(timeout=30) for _ in range(3)]
            await asyncio.sleep(0.5)  # the three are open at the router, idle
            over = [stub.StreamPayments(timeout=30) for _ in range(2)]
            for call in over:
                with pytest.raises(grpc.aio.AioRpcError) as refused_stream:
                    await call.read()
                assert refused_stream.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert error_info(refused_stream.value).reason == "QUOTA_EXCEEDED"
                assert quota_violations(refused_stream.value) == [
                    ("atm", "at most 3 open StreamPayments calls at once")]
            # Another channel pays as usual meanwhile; the streams held still work.
            async with tls.channel_for(router.address, pki_dir, Identity("channel", "store")) as store:
                paid = await api_grpc.PaymentServiceStub(store).SubmitPayment(
                    api.SubmitPaymentRequest(payment=order("limits-store-1", loan, 100)), timeout=10)
            assert paid.payment.status == types_pb2.PAYMENT_STATUS_APPLIED
            await held[0].write(api.StreamPaymentsRequest(payment=order("limits-atm-1", loan, 100)))
            assert (await held[0].read()).payment.status == types_pb2.PAYMENT_STATUS_APPLIED
            for call in held:
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
            # Closed, their slots are free again.
            again = stub.StreamPayments(timeout=30)
            await again.write(api.StreamPaymentsRequest(payment=order("limits-atm-2", loan, 100)))
            assert (await again.read()).payment.status == types_pb2.PAYMENT_STATUS_APPLIED
            await again.done_writing()


async def test_a_digital_customer_holds_at_most_their_own_open_streams_and_another_customer_still_opens(
        mesh, pki_dir, tmp_path):
    """Every customer of the app shares its one certificate: the channel's 100 streams were one
    customer's to take, and the others' none."""
    from paymesh.errors import quota_violations

    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[13]
    with router_with_policy(mesh, pki_dir, tmp_path, "app", "max_open_streams = 3\nmax_open_per_customer = 2",
                            operations='["submit", "stream", "get"]') as router:
        async with tls.channel_for(router.address, pki_dir, Identity("channel", "app")) as ch:
            stub = api_grpc.PaymentServiceStub(ch)

            def stream_of(customer: str):
                return stub.StreamPayments(metadata=(("authorization", "Bearer " + mint(pki_dir, customer, "app")),),
                                           timeout=30)
            held = [stream_of("C-1"), stream_of("C-1")]
            await asyncio.sleep(0.5)  # both open at the router
            with pytest.raises(grpc.aio.AioRpcError) as third:
                await stream_of("C-1").read()
            assert third.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert quota_violations(third.value) == [
                ("app customer C-1", "at most 2 open StreamPayments calls at once")]
            others = stream_of("C-2")  # another customer: the channel's third stream
            await others.write(api.StreamPaymentsRequest(payment=order("customer-limits-1", loan, 100)))
            assert (await others.read()).payment.status == types_pb2.PAYMENT_STATUS_APPLIED
            with pytest.raises(grpc.aio.AioRpcError) as fourth:  # the channel's own limit still holds
                await stream_of("C-3").read()
            assert quota_violations(fourth.value) == [("app", "at most 3 open StreamPayments calls at once")]
            for call in (*held, others):
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
            assert "C-1" not in router.log()  # the refusals' log lines name no customer


async def test_a_router_holds_at_most_its_open_day_files_whoever_sends_them(mesh, pki_dir, tmp_path):
    """A day file's lines are held until its trailer (100,000 lines, some 41 MiB); each caller identity
    may hold 4, and a channel's devices are each an identity: nothing bounded them all together."""
    from paymesh.errors import quota_violations
    from paymesh_tools.simulate_day import batch_requests

    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[14]
    with router_with_policy(mesh, pki_dir, tmp_path, "agent", "", PAYMESH_ROUTER_MAX_OPEN_UPLOADS="2") as router:
        async with tls.channel_for(router.address, pki_dir, Identity("channel", "agent")) as agent, \
                tls.channel_for(router.address, pki_dir, Identity("channel", "store")) as store:
            held = [api_grpc.PaymentServiceStub(agent).UploadBatch(timeout=30) for _ in range(2)]
            await asyncio.sleep(0.5)  # both open at the router: its two
            with pytest.raises(grpc.aio.AioRpcError) as refused_file:
                await api_grpc.PaymentServiceStub(store).UploadBatch(iter(batch_requests(
                    "router-limit-1", AS_OF, [order("router-limit-line-1", loan, 100)])), timeout=10)
            assert refused_file.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert quota_violations(refused_file.value) == [("this router", "at most 2 open UploadBatch calls at once")]
            held[0].cancel()
            for _ in range(50):  # the router notices the cancel and frees its slot
                await asyncio.sleep(0.05)
                try:
                    reply = await api_grpc.PaymentServiceStub(store).UploadBatch(iter(batch_requests(
                        "router-limit-1", AS_OF, [order("router-limit-line-1", loan, 100)])), timeout=10)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            else:
                pytest.fail("a day file cancelled freed no slot")
            assert reply.summary.applied_count == 1
            held[1].cancel()


async def test_an_idle_stream_is_ended_and_a_busy_one_is_not(mesh, pki_dir, tmp_path):
    """An idle StreamPayments was held until its connection aged out (30 minutes), holding memory for nothing."""
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[12]
    with router_with_policy(mesh, pki_dir, tmp_path, "atm", "stream_idle_seconds = 1") as router:
        async with tls.channel_for(router.address, pki_dir, Identity("channel", "atm")) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            idle, busy = stub.StreamPayments(timeout=30), stub.StreamPayments(timeout=30)
            started = time.monotonic()
            for n in range(7):  # an order every 0.4 s for almost 3 s: never idle for a second
                await busy.write(api.StreamPaymentsRequest(payment=order(f"busy-{n}", loan, 100)))
                assert (await busy.read()).payment.status == types_pb2.PAYMENT_STATUS_APPLIED
                await asyncio.sleep(0.4)
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await idle.read()
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE and "sent nothing for 1 s" in ended.value.details()
            assert time.monotonic() - started < 5
            await busy.done_writing()
            assert await busy.read() is grpc.aio.EOF and await busy.code() == grpc.StatusCode.OK
