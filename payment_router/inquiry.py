"""The debt inquiry (consulta de deuda): what a loan owes today, as a channel shows it before it
takes the money, read from the loan's core. A digital customer sees only their own loans: the
token's subject is the borrower, and another's loan is NOT_FOUND exactly like one that does not
exist (OWASP API1). Nothing personal travels: the core's view has an opaque borrower id, and the
answer not even that."""

import asyncio

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2, loans_pb2
from bank.payments.v1 import payment_service_pb2 as api
from paymesh.errors import Refused
from paymesh.loan_ids import loan_type_of

INQUIRY_TIMEOUT = 2.0  # seconds a core has to answer; the channel's customer is waiting
_OVERDUE = loans_pb2.INSTALLMENT_STATUS_OVERDUE
_PAID = loans_pb2.INSTALLMENT_STATUS_PAID


def debt_of(loan: loans_pb2.Loan) -> api.LoanDebt:
    """The channel's view of a core's loan: the amounts a customer is told, nothing else."""
    overdue = [i for i in loan.schedule if i.status == _OVERDUE]
    unpaid = [i for i in loan.schedule if i.status != _PAID]
    late = sum(i.outstanding_minor for i in overdue)

    def money(amount: int) -> types_pb2.Money:
        return types_pb2.Money(currency_code=loan.currency_code, amount_minor=amount)

    return api.LoanDebt(
        loan_id=loan.loan_id, loan_type=loan.loan_type, currency_code=loan.currency_code,
        amount_due=loan.amount_due, overdue=money(late),
        penalty_interest=money(sum(i.penalty_interest_minor for i in overdue)),
        fees=money(sum(i.fees_minor for i in overdue)),
        installment_in_course=money(loan.amount_due.amount_minor - late),
        next_due_date=unpaid[0].due_date if unpaid else "", days_past_due=loan.days_past_due,
        payoff_amount=loan.payoff_amount, as_of_date=loan.as_of_date,
        paid_off=loan.status == loans_pb2.LOAN_STATUS_PAID_OFF,
    )


async def loan_debt(core_stubs, loan_id: str, customer_id: str, timeout: float) -> api.LoanDebt:
    """One loan's debt; customer_id (a digital channel's customer, else "") must be its borrower."""
    loan_type = loan_type_of(loan_id)
    if loan_type is None:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD,
                      f"loan_id {loan_id[:40]!r} is not a loan id (CSH-, MTG- or VEH- and digits)", "loan_id")
    try:
        reply = await core_stubs[loan_type].GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id), timeout=timeout)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            raise _not_found(loan_id) from None
        raise _unavailable() from None
    if customer_id and reply.loan.borrower_id != customer_id:
        raise _not_found(loan_id)  # another customer's loan: exactly as if there were none
    return debt_of(reply.loan)


async def customer_loans(core_stubs, customer_id: str, timeout: float) -> list[api.LoanDebt]:
    """The customer's loans in every core, open ones first, each core's in loan id order."""
    request = core_pb2.ListBorrowerLoansRequest(borrower_id=customer_id)
    try:
        replies = await asyncio.gather(*(stub.ListBorrowerLoans(request, timeout=timeout)
                                         for stub in core_stubs.values()))
    except grpc.aio.AioRpcError:
        raise _unavailable() from None
    debts = [debt_of(loan) for reply in replies for loan in reply.loans]
    return sorted(debts, key=lambda debt: debt.paid_off)  # (stable: each core's order stays)


def _not_found(loan_id: str) -> Refused:
    return Refused(errors_pb2.ERROR_REASON_LOAN_NOT_FOUND, f"no loan {loan_id[:40]!r}", "loan_id")


def _unavailable() -> Refused:
    return Refused(errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                   "the loan's core is unavailable; ask again shortly", retry_after=1.0)
