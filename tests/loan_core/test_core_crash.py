"""Durable before answering: a core process killed with SIGKILL in the middle of a stream,
restarted, and sent the same payments again ends with exactly the balances, answers and
day totals of a run without the crash; nothing it acknowledged is lost or applied twice."""

import functools
import random
from datetime import date


from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from paymesh_tools.products import RULES_OF_TYPE
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub
from loan_core.portfolio import generate
from tests.harness import start_service
from tests.loan_core.support import sigkill, stream_with_fault

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()
ENV = dict(PAYMESH_PORTFOLIO_SIZE="100", PAYMESH_PORTFOLIO_AS_OF=DAY)
MODES = (types_pb2.PREPAYMENT_MODE_REDUCE_TERM, types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT)


def the_payments() -> list[list[core_pb2.LoanPayment]]:
    """60 micro-batches of 20 payments over 50 open loans: mostly small, some prepayments."""
    rng = random.Random(11)
    loans = [t for t in generate(RULES_OF_TYPE[types_pb2.LOAN_TYPE_CASH], seed=42, count=100, as_of=AS_OF)
             if t.installments_paid < t.term_months][:50]
    payments = []
    for n in range(1200):
        loan = rng.choice(loans)
        amount = rng.randint(300_00, 900_00) if rng.random() < 0.1 else rng.randint(1_00, 80_00)
        payments.append(payment(f"crash-{n}", loan.loan_id, amount, loan.currency_code, DAY, mode=rng.choice(MODES)))
    return [payments[i:i + 20] for i in range(0, len(payments), 20)]


async def final_state(address: str, settings, loan_ids: set[str]) -> tuple[dict, core_pb2.ListAppliedPaymentsResponse]:
    async with core_stub(address, settings) as stub:
        loans = {loan_id: (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id, as_of_date=DAY))).loan
                 for loan_id in sorted(loan_ids)}
        day = await stub.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(business_date=DAY, page_size=1))
    return loans, day


async def test_sigkill_mid_stream_then_the_same_payments_again_ends_as_without_the_crash(tmp_path, settings):
    batches = the_payments()
    loan_ids = {p.loan_id for batch in batches for p in batch}

    reference = start_service("core-cash", tmp_path / "reference", settings.pki_dir, **ENV)
    try:
        async with core_stub(reference.address, settings) as stub:
            expected_outcomes = await apply_batches(stub, batches)
        expected = await final_state(reference.address, settings, loan_ids)
    finally:
        reference.kill()
    assert sum(o.HasField("applied") for o in expected_outcomes) > 1000

    acknowledged = []
    for answers_before_kill in (3, 17):  # two crashes, at different points of the stream
        crashed = start_service("core-cash", tmp_path / "crashed", settings.pki_dir, **ENV)
        try:
            answered, _ = await stream_with_fault(crashed.address, settings, batches, answers_before_kill * 20,
                                                  functools.partial(sigkill, crashed))
            acknowledged.append(answered)
        finally:
            crashed.kill()
        assert crashed.process.returncode == -9
    restarted = start_service("core-cash", tmp_path / "crashed", settings.pki_dir, **ENV)
    try:
        async with core_stub(restarted.address, settings) as stub:
            outcomes = await apply_batches(stub, batches)
        state = await final_state(restarted.address, settings, loan_ids)
    finally:
        restarted.kill()

    for before_crash in acknowledged:
        assert before_crash == outcomes[:len(before_crash)], "an acknowledged answer changed or was lost"
    assert outcomes == expected_outcomes
    assert state == expected
