"""The mortgage and vehicle cores as services: insurance in the installment, the
mortgage's partial-payment and prepayment rules, the vehicle balloon, each product's
ledger accounts."""

from datetime import date

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from paymesh_tools.products import RULES_OF_CORE, RULES_OF_TYPE
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub, running_core
from loan_core.portfolio import generate
from paymesh import chart_of_accounts as coa

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()


def credits(outcome) -> dict[str, int]:
    return {e.account: e.amount.amount_minor for e in outcome.applied.posting.entries[1:]}


async def loans_with_status(stub, loan_type: int, status: int) -> list[loans_pb2.Loan]:
    found = []
    for terms in generate(RULES_OF_TYPE[loan_type], seed=42, count=60, as_of=AS_OF):
        loan = (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=terms.loan_id, as_of_date=DAY))).loan
        if loan.status == status:
            found.append(loan)
    return found


async def test_mortgage_insurance_partial_payment_and_prepayment_rules(settings):
    async with running_core(RULES_OF_CORE["core-mortgage"], settings, count=60) as running:
        async with core_stub(f"127.0.0.1:{running.port}", settings) as stub:
            loan = (await loans_with_status(stub, types_pb2.LOAN_TYPE_MORTGAGE, loans_pb2.LOAN_STATUS_OVERDUE))[0]
            assert all(i.insurance_minor > 0 for i in loan.schedule)
            oldest = next(i for i in loan.schedule if i.status == loans_pb2.INSTALLMENT_STATUS_OVERDUE)
            currency = loan.currency_code
            [partial] = await apply_batches(stub, [[payment("m-1", loan.loan_id, oldest.outstanding_minor - 1,
                                                            currency, DAY)]])
            assert partial.rejection.reason == errors_pb2.ERROR_REASON_PARTIAL_PAYMENT_NOT_ALLOWED
            unchanged = (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=loan.loan_id, as_of_date=DAY))).loan
            assert unchanged == loan

            [applied] = await apply_batches(stub, [[payment("m-3", loan.loan_id, oldest.outstanding_minor,
                                                            currency, DAY)]])
            allocation = applied.applied.allocation
            # No late fee (Ley 31143): the delay costs penalty interest only.
            assert allocation.insurance_minor == oldest.insurance_minor and allocation.fees_minor == 0
            assert allocation.penalty_interest_minor > 0
            lines = credits(applied)
            assert lines[coa.LIFE_INSURANCE_PAYABLE] + lines[coa.PROPERTY_INSURANCE_PAYABLE] == oldest.insurance_minor
            assert (lines[coa.product_account(coa.LOAN_PRINCIPAL, types_pb2.LOAN_TYPE_MORTGAGE)]
                    == oldest.principal_minor)

            # A prepayment of 100.00 beyond what is due is taken when asked for: no rule sets a minimum.
            due_now = (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=loan.loan_id, as_of_date=DAY))).loan
            [prepaid] = await apply_batches(stub, [[payment("m-2", loan.loan_id, due_now.amount_due.amount_minor
                                                            + 100_00, currency, DAY,
                                                            mode=types_pb2.PREPAYMENT_MODE_REDUCE_TERM)]])
            assert prepaid.applied.allocation.prepayment_minor >= 100_00, prepaid


async def test_vehicle_insurance_and_balloon(settings):
    async with running_core(RULES_OF_CORE["core-vehicle"], settings, count=60) as running:
        async with core_stub(f"127.0.0.1:{running.port}", settings) as stub:
            loans = await loans_with_status(stub, types_pb2.LOAN_TYPE_VEHICLE, loans_pb2.LOAN_STATUS_CURRENT)
            balloon = next(loan for loan in loans if loan.balloon_minor)
            last = balloon.schedule[-1]
            assert last.principal_minor >= balloon.balloon_minor
            assert last.principal_minor > 2 * balloon.schedule[0].principal_minor
            due = balloon.amount_due.amount_minor
            [applied] = await apply_batches(stub, [[payment("v-1", balloon.loan_id, due, balloon.currency_code,
                                                            DAY, channel=types_pb2.CHANNEL_STORE)]])
            lines = credits(applied)
            assert lines[coa.VEHICLE_INSURANCE_PAYABLE] == applied.applied.allocation.insurance_minor > 0
            assert coa.LIFE_INSURANCE_PAYABLE not in lines
            assert applied.applied.posting.entries[0].account == coa.channel_clearing(types_pb2.CHANNEL_STORE)
