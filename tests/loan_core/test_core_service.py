"""A loan core over real mTLS (in process, real SQLite): the apply stream, exactly once,
bad input answered with a rejection or a clear status while nothing changes, reversals,
lookups and who may call what."""

import asyncio
from datetime import date

import grpc
import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from paymesh_tools.products import RULES_OF_CORE, RULES_OF_TYPE
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub, running_core
from loan_core.portfolio import generate
from paymesh.errors import error_info, field_violations
from paymesh.topology import OPERATOR, ROUTER, Identity

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()
PORTFOLIO = generate(RULES_OF_TYPE[types_pb2.LOAN_TYPE_CASH], seed=42, count=300, as_of=AS_OF)


def loans_where(status: int, currency: str = "PEN") -> list[str]:
    """Cash loans of the test portfolio with this status on AS_OF (as GetLoan reports it)."""
    from core_cash.rules import RULES
    from loan_core.queries import loan_message
    from loan_core.loan import originate

    return [t.loan_id for t in PORTFOLIO if t.currency_code == currency
            and loan_message(originate(t, RULES), RULES, AS_OF).status == status]


CURRENT, OVERDUE, PAID_OFF = (loans_where(s) for s in (loans_pb2.LOAN_STATUS_CURRENT, loans_pb2.LOAN_STATUS_OVERDUE,
                                                         loans_pb2.LOAN_STATUS_PAID_OFF))
USD_LOAN = loans_where(loans_pb2.LOAN_STATUS_CURRENT, "USD")[0]


async def get_loan(stub, loan_id: str) -> loans_pb2.Loan:
    return (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id, as_of_date=DAY))).loan


async def day_movements(stub, day: str = DAY) -> core_pb2.ListAppliedPaymentsResponse:
    return await stub.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(business_date=day))


def reason_of(error: grpc.aio.AioRpcError) -> str:
    info = error_info(error)
    assert info is not None, f"no ErrorInfo in {error.code().name}: {error.details()}"
    return info.reason


async def test_payments_are_answered_in_order_and_a_replay_gets_the_first_result_unchanged(core):
    loan = await get_loan(core, CURRENT[0])
    first = [payment("pay-1", CURRENT[0], 200_00, "PEN", DAY), payment("pay-2", CURRENT[1], 300_00, "PEN", DAY)]
    outcomes = await apply_batches(core, [first[:1], first[1:]])
    assert [o.payment_id for o in outcomes] == ["pay-1", "pay-2"]
    assert all(o.HasField("applied") for o in outcomes)
    applied = outcomes[0].applied
    assert applied.amount.amount_minor == 200_00 and applied.business_date == DAY
    paid_principal = applied.allocation.principal_minor + applied.allocation.prepayment_minor
    assert applied.outstanding_balance.amount_minor == loan.outstanding_principal.amount_minor - paid_principal
    assert applied.posting.posting_id == "pay-1" and applied.posting.loan_type == types_pb2.LOAN_TYPE_CASH
    after_first = await get_loan(core, CURRENT[0])

    replayed = await apply_batches(core, [first, first[:1]])  # a new stream, and twice in one message
    assert [o.SerializeToString() for o in replayed] == [o.SerializeToString() for o in outcomes + outcomes[:1]]
    assert await get_loan(core, CURRENT[0]) == after_first
    movements = await day_movements(core)
    assert movements.payment_count == 2 and movements.payment_totals[0].amount_minor == 500_00


async def test_the_same_payment_id_with_another_body_is_refused(core):
    [applied] = await apply_batches(core, [[payment("pay-9", CURRENT[0], 100_00, "PEN", DAY)]])
    loan = await get_loan(core, CURRENT[0])
    [refused] = await apply_batches(core, [[payment("pay-9", CURRENT[0], 100_01, "PEN", DAY)]])
    assert refused.rejection.reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert await get_loan(core, CURRENT[0]) == loan
    [again] = await apply_batches(core, [[payment("pay-9", CURRENT[0], 100_00, "PEN", DAY)]])
    assert again == applied


BAD_PAYMENTS = {
    "unknown loan": (dict(loan_id="CSH-999999"), errors_pb2.ERROR_REASON_LOAN_NOT_FOUND),
    "mortgage id at the cash core": (dict(loan_id="MTG-000001"), errors_pb2.ERROR_REASON_WRONG_LOAN_TYPE),
    "malformed loan id": (dict(loan_id="CSH-12;DROP"), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "wrong currency": (dict(currency="USD"), errors_pb2.ERROR_REASON_CURRENCY_MISMATCH),
    "not a currency code": (dict(currency="soles"), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "zero amount": (dict(amount_minor=0), errors_pb2.ERROR_REASON_AMOUNT_INVALID),
    "negative amount": (dict(amount_minor=-500), errors_pb2.ERROR_REASON_AMOUNT_INVALID),
    "absurd amount": (dict(amount_minor=2**63 - 1), errors_pb2.ERROR_REASON_AMOUNT_INVALID),
    "paid-off loan": (dict(loan_id=PAID_OFF[0]), errors_pb2.ERROR_REASON_LOAN_PAID_OFF),
    "malformed date": (dict(business_date="27/11/2026"), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "impossible date": (dict(business_date="2026-02-30"), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "empty date": (dict(business_date=""), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "date before disbursement": (dict(business_date="1999-01-01"), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "empty payment id": (dict(payment_id=""), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "malformed payment id": (dict(payment_id="pay 1\n"), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "no channel": (dict(channel=types_pb2.CHANNEL_UNSPECIFIED), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "unknown channel": (dict(channel=99), errors_pb2.ERROR_REASON_INVALID_FIELD),
    "unknown prepayment mode": (dict(mode=7), errors_pb2.ERROR_REASON_INVALID_FIELD),
}


async def test_bad_payments_get_their_rejection_nothing_changes_and_the_stream_goes_on(core):
    watched = [CURRENT[0], PAID_OFF[0], OVERDUE[0]]
    before = [await get_loan(core, loan_id) for loan_id in watched]
    batch = []
    for n, (_case, (changes, _)) in enumerate(BAD_PAYMENTS.items()):
        fields = dict(payment_id=f"bad-{n}", loan_id=CURRENT[0], amount_minor=100_00, currency="PEN",
                      business_date=DAY)
        fields.update(changes)
        batch.append(payment(**fields))
    good = payment("good-1", OVERDUE[0], 50_00, "PEN", DAY)
    outcomes = await apply_batches(core, [batch[:5], batch[5:] + [good]])

    for outcome, (case, (_, reason)) in zip(outcomes, BAD_PAYMENTS.items()):
        assert outcome.rejection.reason == reason, case
        assert outcome.rejection.message, case
    assert outcomes[-1].HasField("applied"), "the stream went on after the rejections"
    assert [await get_loan(core, loan_id) for loan_id in watched[:2]] == before[:2]
    movements = await day_movements(core)
    assert [m.payment_id for m in movements.movements] == ["good-1"]


async def test_payments_to_one_loan_from_two_streams_apply_one_after_another(core):
    loan_id = OVERDUE[1]
    start = (await get_loan(core, loan_id)).payoff_amount.amount_minor

    async def stream(name):
        batches = [[payment(f"{name}-{n}", loan_id, 10_00 + n, "PEN", DAY)] for n in range(15)]
        return await apply_batches(core, batches)

    a, b = await asyncio.gather(stream("a"), stream("b"))
    outcomes = [o for o in a + b]
    assert all(o.HasField("applied") for o in outcomes)
    assert sum(o.applied.amount.amount_minor for o in outcomes) == 2 * sum(10_00 + n for n in range(15))
    after = await get_loan(core, loan_id)
    assert after.payoff_amount.amount_minor == start - 2 * sum(10_00 + n for n in range(15))
    assert all(o.applied.posting.entries[0].amount.amount_minor == o.applied.amount.amount_minor for o in outcomes)


async def test_a_reversal_restores_the_loan_exactly_and_is_idempotent(core):
    loan_id = OVERDUE[2]
    before = await get_loan(core, loan_id)
    [outcome] = await apply_batches(core, [[payment("pay-r", loan_id, before.amount_due.amount_minor + 700_00,
                                                    "PEN", DAY, mode=types_pb2.PREPAYMENT_MODE_REDUCE_TERM)]])
    # A prepayment asked for: the installment in course is settled to the day, its unearned interest prepaid too.
    assert outcome.applied.allocation.prepayment_minor >= 700_00
    assert await get_loan(core, loan_id) != before
    request = core_pb2.ReversePaymentRequest(reversal_id="rev-1", payment_id="pay-r", business_date=DAY,
                                             reason="store drawer did not balance")
    reversed_ = await core.ReversePayment(request)
    assert await get_loan(core, loan_id) == before
    assert reversed_.outstanding_balance == before.outstanding_principal
    original = outcome.applied.posting
    assert [e.account for e in reversed_.posting.entries] == [e.account for e in original.entries]
    assert [e.side for e in reversed_.posting.entries] == [3 - e.side for e in original.entries]
    assert reversed_.posting.posting_id == "rev-1" and reversed_.posting.entries[0].entry_id == "rev-1:1"
    assert await core.ReversePayment(request) == reversed_, "the same reversal again: the same answer"
    movements = await day_movements(core)
    assert (movements.payment_count, movements.reversal_count) == (1, 1)
    assert [m.reversal for m in movements.movements] == [False, True]

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await core.ReversePayment(core_pb2.ReversePaymentRequest(reversal_id="rev-2", payment_id="pay-r",
                                                                 business_date=DAY))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(again.value) == "ALREADY_REVERSED"
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await core.ReversePayment(core_pb2.ReversePaymentRequest(reversal_id="rev-1", payment_id="pay-r",
                                                                 business_date="2026-11-28"))
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    [replayed] = await apply_batches(core, [[payment("pay-r", loan_id, before.amount_due.amount_minor + 700_00,
                                                     "PEN", DAY, mode=types_pb2.PREPAYMENT_MODE_REDUCE_TERM)]])
    assert replayed == outcome and await get_loan(core, loan_id) == before, "a replay never applies it again"


async def test_an_earlier_payment_is_reversed_and_the_later_one_is_applied_again(core):
    """Only the latest payment of a loan could be reversed (REVERSAL_NOT_ALLOWED for the others)."""
    loan_id = OVERDUE[3]
    [first, second] = await apply_batches(core, [[payment("first", loan_id, 30_00, "PEN", DAY),
                                                  payment("second", loan_id, 40_00, "PEN", DAY)]])
    reversed_ = await core.ReversePayment(core_pb2.ReversePaymentRequest(reversal_id="r-first", payment_id="first",
                                                                         business_date=DAY))
    # Both went to the oldest overdue installment's penalty and interest first: without the first 30.00,
    # the second's 40.00 pays what the first paid and 10.00 more of the same installment, so it is revised.
    [revision] = reversed_.revisions
    assert (revision.payment_id, revision.revision_id) == ("second", "second:R1")
    assert revision.allocation_before == second.applied.allocation and revision.allocation != second.applied.allocation
    assert revision.posting.posting_id == "second:R1"
    loan = await get_loan(core, loan_id)
    assert reversed_.outstanding_balance == loan.outstanding_principal == revision.outstanding_balance
    day = await day_movements(core)
    assert [(m.movement_id, m.reversal, m.revision) for m in day.movements] == [
        ("first", False, False), ("second", False, False), ("r-first", True, False), ("second:R1", False, True)]
    assert (day.payment_count, day.reversal_count) == (2, 1), "a revision moves no money: not counted as a payment"


@pytest.mark.parametrize("request_, code, reason, field", [
    (dict(reversal_id="r", payment_id="never-applied", business_date=DAY), "NOT_FOUND", "PAYMENT_NOT_FOUND",
     "payment_id"),
    (dict(reversal_id="r", payment_id="p", business_date="2026-13-01"), "INVALID_ARGUMENT", "INVALID_FIELD",
     "business_date"),
    (dict(reversal_id="", payment_id="p", business_date=DAY), "INVALID_ARGUMENT", "INVALID_FIELD", "reversal_id"),
    (dict(reversal_id="r", payment_id="", business_date=DAY), "INVALID_ARGUMENT", "INVALID_FIELD", "payment_id"),
])
async def test_bad_reversals_get_a_clear_status(core, request_, code, reason, field):
    before = await day_movements(core)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await core.ReversePayment(core_pb2.ReversePaymentRequest(**request_))
    assert error.value.code().name == code and reason_of(error.value) == reason
    assert field_violations(error.value) == [field] and error.value.details()
    assert await day_movements(core) == before


@pytest.mark.parametrize("loan_id, as_of, code, reason", [
    ("CSH-999999", DAY, "NOT_FOUND", "LOAN_NOT_FOUND"),
    ("VEH-000001", DAY, "INVALID_ARGUMENT", "WRONG_LOAN_TYPE"),
    ("loan-1", DAY, "INVALID_ARGUMENT", "INVALID_FIELD"),
    (CURRENT[0], "yesterday", "INVALID_ARGUMENT", "INVALID_FIELD"),
])
async def test_bad_loan_lookups_get_a_clear_status(core, loan_id, as_of, code, reason):
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await core.GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id, as_of_date=as_of))
    assert error.value.code().name == code and reason_of(error.value) == reason


async def test_a_loan_shows_its_schedule_and_balances(core):
    loan = await get_loan(core, OVERDUE[0])
    assert loan.status == loans_pb2.LOAN_STATUS_OVERDUE and loan.currency_code == "PEN"
    assert sum(i.principal_minor for i in loan.schedule) == loan.principal_minor
    overdue = [i for i in loan.schedule if i.status == loans_pb2.INSTALLMENT_STATUS_OVERDUE]
    assert overdue and loan.amount_due.amount_minor >= sum(i.outstanding_minor for i in overdue)
    assert loan.payoff_amount.amount_minor > loan.amount_due.amount_minor
    assert loan.borrower_id.startswith("B") and len(loan.schedule) == loan.term_months


async def test_the_days_movements_come_in_pages_with_whole_day_totals(core):
    batch = [payment(f"day-{n}", CURRENT[n % 5], 10_00, "PEN", DAY) for n in range(7)]
    batch.append(payment("day-usd", USD_LOAN, 5_00, "USD", DAY))
    await apply_batches(core, [batch, [payment("other-day", CURRENT[0], 1_00, "PEN", "2026-11-28")]])
    pages, token = [], ""
    while True:
        page = await core.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(business_date=DAY, page_size=3,
                                                                                  page_token=token))
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    assert [len(p.movements) for p in pages] == [3, 3, 2]
    assert [m.movement_id for p in pages for m in p.movements] == [p.payment_id for p in batch]
    totals = {(m.currency_code, m.amount_minor) for m in pages[0].payment_totals}
    assert totals == {("PEN", 70_00), ("USD", 5_00)} and pages[0].payment_count == 8
    for bad in (dict(business_date="2026/11/27"), dict(business_date=DAY, page_size=-1),
                dict(business_date=DAY, page_token="not-a-token")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await core.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(**bad))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_only_the_router_applies_and_the_operator_may_only_read(settings):
    async with running_core(RULES_OF_CORE["core-cash"], settings, count=20) as running:
        address = f"127.0.0.1:{running.port}"
        async with core_stub(address, settings, OPERATOR) as operator:
            assert (await get_loan(operator, "CSH-000001")).loan_id == "CSH-000001"
            await day_movements(operator)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await apply_batches(operator, [[payment("op-1", "CSH-000001", 1_00, "PEN", DAY)]])
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await operator.ReversePayment(core_pb2.ReversePaymentRequest(reversal_id="r", payment_id="p",
                                                                             business_date=DAY))
            assert reason_of(denied.value) == "CALLER_NOT_ALLOWED"
        async with core_stub(address, settings, Identity("channel", "atm")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await get_loan(channel, "CSH-000001")
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        async with core_stub(address, settings, ROUTER) as router:
            await get_loan(router, "CSH-000001")


async def test_a_refusal_that_depended_on_the_loans_state_is_replayed_unchanged(core):
    loan_id = CURRENT[3]
    payoff = (await get_loan(core, loan_id)).payoff_amount.amount_minor
    [paid_off] = await apply_batches(core, [[payment("payoff", loan_id, payoff, "PEN", DAY)]])
    assert paid_off.applied.outstanding_balance.amount_minor == 0
    [refused] = await apply_batches(core, [[payment("late", loan_id, 10_00, "PEN", DAY)]])
    assert refused.rejection.reason == errors_pb2.ERROR_REASON_LOAN_PAID_OFF
    await core.ReversePayment(core_pb2.ReversePaymentRequest(reversal_id="undo-payoff", payment_id="payoff",
                                                             business_date=DAY))
    [replayed] = await apply_batches(core, [[payment("late", loan_id, 10_00, "PEN", DAY)]])
    assert replayed == refused, "the first answer stands, though the loan is open again"
    [fresh] = await apply_batches(core, [[payment("late-2", loan_id, 10_00, "PEN", DAY)]])
    assert fresh.HasField("applied")
    assert [m.payment_id for m in (await day_movements(core)).movements] == ["payoff", "payoff", "late-2"]


async def test_an_oversized_message_is_refused_payment_by_payment_and_the_stream_goes_on(core):
    from loan_core.server import MAX_PAYMENTS_PER_MESSAGE

    huge = [payment(f"h-{n}", CURRENT[0], 1_00, "PEN", DAY) for n in range(MAX_PAYMENTS_PER_MESSAGE + 1)]
    outcomes = await apply_batches(core, [huge, [payment("after-huge", CURRENT[0], 1_00, "PEN", DAY)]])
    assert {o.rejection.reason for o in outcomes[:-1]} == {errors_pb2.ERROR_REASON_INVALID_FIELD}
    assert outcomes[-1].HasField("applied")
    assert (await day_movements(core)).payment_count == 1


async def test_a_payment_the_core_cannot_apply_is_refused_alone(core, settings):
    from paymesh.sqlite import connect

    broken = CURRENT[5]
    connection = connect(settings.data_dir / "core-cash.db")
    connection.execute("UPDATE loans SET state = '[1, 2' WHERE loan_id = ?", (broken,))  # a corrupt row
    connection.close()
    outcomes = await apply_batches(core, [[payment("ok-1", CURRENT[6], 5_00, "PEN", DAY),
                                           payment("broken", broken, 5_00, "PEN", DAY),
                                           payment("ok-2", CURRENT[7], 5_00, "PEN", DAY)]])
    assert outcomes[1].rejection.reason == errors_pb2.ERROR_REASON_UNSPECIFIED
    assert outcomes[0].HasField("applied") and outcomes[2].HasField("applied")
    assert [m.payment_id for m in (await day_movements(core)).movements] == ["ok-1", "ok-2"]


async def test_an_online_message_is_committed_ahead_of_a_day_files_waiting_ones(core):
    """Online and a day file shared one queue: an online payment waited for every file message
    sent before it. Now each has its stream (its priority) and the core's group commit takes a
    waiting online message first: it waits at most for the commit already running."""
    loans = CURRENT + OVERDUE
    file_call = core.ApplyPayments()
    batch_priority = dict(priority=types_pb2.PRIORITY_BATCH)
    for n in range(30):  # 30 messages of 100: many commits of work queued on the file's stream
        await file_call.write(core_pb2.ApplyPaymentsRequest(payments=[
            payment(f"file-{n}-{k}", loans[(n * 100 + k) % len(loans)], 1_00, "PEN", DAY) for k in range(100)],
            **batch_priority))
    order: list[str] = []

    async def read_file():
        async for _ in file_call:
            order.append("file")
            if len(order) >= 31:
                return

    reading = asyncio.create_task(read_file())
    while "file" not in order:  # the file is being applied
        await asyncio.sleep(0.001)
    online_call = core.ApplyPayments()
    await online_call.write(core_pb2.ApplyPaymentsRequest(
        payments=[payment("online-1", CURRENT[0], 5_00, "PEN", DAY, channel=types_pb2.CHANNEL_ATM)],
        priority=types_pb2.PRIORITY_ONLINE))
    [answer] = (await online_call.read()).outcomes
    order.append("online")
    assert answer.HasField("applied")
    await online_call.done_writing()
    await file_call.done_writing()
    await reading
    # Committed in the next commit after the one running: at most a few file messages before it.
    assert order.index("online") <= 6, order
