"""The loan engine every core shares: what is due on a business date, how a payment is
spent, and how the schedule is recomputed after a prepayment.

A payment settles, in this order: the overdue installments, oldest first; then the
installment in course (the one whose month contains the business date). Within an
installment: late fee, penalty interest, interest, insurance, principal. What is left
is a prepayment of principal, and the rest of the schedule is recomputed (shorter term,
or lower installment). Functions here never change the state they are given.
"""

from dataclasses import dataclass
from datetime import date

from bank.common.v1 import errors_pb2, types_pb2
from loan_core.loan import Installment, LoanState, build_installments
from loan_core.money import penalty_interest
from loan_core.rules import ProductRules
from paymesh.errors import Refused

HORIZON_DAYS = 50 * 365  # the furthest after its disbursement a loan's state is computed


@dataclass
class Allocation:
    fees: int = 0
    penalty_interest: int = 0
    interest: int = 0
    life_insurance: int = 0
    asset_insurance: int = 0
    principal: int = 0
    prepayment: int = 0

    @property
    def insurance(self) -> int:
        return self.life_insurance + self.asset_insurance

    @property
    def total(self) -> int:
        return self.fees + self.penalty_interest + self.interest + self.insurance + self.principal + self.prepayment


def accrue(state: LoanState, rules: ProductRules, on: date) -> None:
    """Charges what overdue installments owe on `on`: the late fee once, and penalty
    interest on the overdue principal for each day since the due date (or the last accrual)."""
    today = on.toordinal()
    late_fee = rules.late_fee_minor[state.terms.currency_code]
    for installment in state.open_installments:
        if installment.due >= today:
            break  # installments fall due in order
        if installment.outstanding == 0:
            continue
        if installment.fee_charged == 0:
            installment.fee_charged = late_fee
        since = max(installment.due, installment.penalty_to)
        if today > since:
            base = installment.principal - installment.paid_principal
            installment.penalty_accrued += penalty_interest(base, rules.penalty_rate_bps, today - since)
            installment.penalty_to = today


def started(state: LoanState, on: date) -> int:
    """The index of the first installment whose month has not started on `on`: those
    before it are settled or due, those from it on are untouched future installments."""
    today = on.toordinal()
    index = state.settled
    # Installments are consecutive months: one's period starts at the previous one's due date.
    period_start = state.installments[index - 1].due if index else state.terms.disbursement_date.toordinal()
    installments = state.installments
    while index < len(installments) and period_start < today:
        period_start = installments[index].due
        index += 1
    return index


def due_installments(state: LoanState, on: date) -> tuple[list[Installment], list[Installment]]:
    """(what is due on `on`: overdue installments and the one in course; the future ones)."""
    boundary = started(state, on)
    due = [i for i in state.installments[state.settled:boundary] if i.outstanding]
    # Nothing was ever paid on a future installment: it is open if it has anything scheduled.
    future = [i for i in state.installments[boundary:] if i.principal or i.interest or i.insurance]
    return due, future


def as_of(state: LoanState, rules: ProductRules, on: date) -> LoanState:
    """A copy of the loan with fees and penalty interest charged up to `on`. Only the
    installments due can change; settled and future ones are shared, not copied."""
    if on.toordinal() - state.terms.disbursement_date.toordinal() > HORIZON_DAYS:
        # Effective rates compound: centuries of arrears are numbers no ledger holds.
        raise Refused(errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE,
                      f"{on} is more than {HORIZON_DAYS // 365} years after the loan was disbursed"
                      f" ({state.terms.disbursement_date}): nothing is computed that far", "business_date")
    view = state.copy_range(state.settled, started(state, on))
    accrue(view, rules, on)
    return view


def payoff_amount(state: LoanState, on: date) -> int:
    """Everything that settles the loan on `on` (state already accrued to `on`)."""
    due, future = due_installments(state, on)
    return sum(i.outstanding for i in due) + sum(i.principal - i.paid_principal for i in future)


def apply_payment(
    state: LoanState, rules: ProductRules, amount: int, on: date, mode: int
) -> tuple[LoanState, Allocation]:
    """The loan after paying amount on `on`, and how the amount was spent."""
    if amount <= 0:
        raise Refused(errors_pb2.ERROR_REASON_AMOUNT_INVALID, "the amount must be greater than zero",
                      "amount.amount_minor")
    if on < state.terms.disbursement_date:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD,
                      f"business date {on} is before the loan was disbursed", "business_date")
    loan = as_of(state, rules, on)
    due, future = due_installments(loan, on)
    if not due and not future:
        raise Refused(errors_pb2.ERROR_REASON_LOAN_PAID_OFF, f"loan {state.terms.loan_id} is already paid off")
    payoff = sum(i.outstanding for i in due) + sum(i.principal for i in future)
    if amount > payoff:
        raise Refused(errors_pb2.ERROR_REASON_AMOUNT_INVALID,
                      f"the amount {amount} is more than the {payoff} that pays the loan off",
                      "amount.amount_minor")
    if not rules.partial_payments_allowed and due and amount < due[0].outstanding:
        raise Refused(errors_pb2.ERROR_REASON_PARTIAL_PAYMENT_NOT_ALLOWED,
                      f"this product does not take partial payments: installment {due[0].number} "
                      f"needs {due[0].outstanding}", "amount.amount_minor")
    allocation = Allocation()
    left = amount
    for installment in due:
        if left == 0:
            break
        left = _pay_installment(installment, left, allocation)
    if left:
        _prepay(loan, rules, future, left, mode or rules.default_prepayment_mode, allocation)
    loan.advance_settled()
    return loan, allocation


def _pay_installment(installment: Installment, left: int, allocation: Allocation) -> int:
    part = min(left, installment.fee_charged - installment.paid_fee)
    installment.paid_fee += part
    allocation.fees += part
    left -= part
    part = min(left, installment.penalty_accrued - installment.paid_penalty)
    installment.paid_penalty += part
    allocation.penalty_interest += part
    left -= part
    part = min(left, installment.interest - installment.paid_interest)
    installment.paid_interest += part
    allocation.interest += part
    left -= part
    part = min(left, installment.insurance - installment.paid_insurance)
    life_before = min(installment.paid_insurance, installment.life_insurance)
    installment.paid_insurance += part
    life_part = min(installment.paid_insurance, installment.life_insurance) - life_before
    allocation.life_insurance += life_part
    allocation.asset_insurance += part - life_part
    left -= part
    part = min(left, installment.principal - installment.paid_principal)
    installment.paid_principal += part
    allocation.principal += part
    return left - part


def _prepay(loan: LoanState, rules: ProductRules, future: list[Installment], amount: int, mode: int,
            allocation: Allocation) -> None:
    """Pays amount off the future principal and recomputes the future installments."""
    balance = sum(i.principal for i in future)
    if amount < balance and rules.min_prepayment_installments:
        minimum = rules.min_prepayment_installments * future[0].scheduled_total
        if amount < minimum:
            raise Refused(errors_pb2.ERROR_REASON_PREPAYMENT_NOT_ALLOWED,
                          f"a prepayment must be at least {minimum} (or pay the loan off); this one is {amount}",
                          "amount.amount_minor")
    if mode not in (types_pb2.PREPAYMENT_MODE_REDUCE_TERM, types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT):
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD, f"unknown prepayment mode {mode}", "prepayment_mode")
    allocation.prepayment = amount
    loan.prepaid_minor += amount
    remaining = balance - amount
    loan.balloon_minor = min(loan.balloon_minor, remaining)
    future_ids = {id(i) for i in future}
    kept = [i for i in loan.installments if id(i) not in future_ids]
    if remaining == 0:
        loan.installments = kept
        return
    first = future[0]
    payment = None
    if mode == types_pb2.PREPAYMENT_MODE_REDUCE_TERM:
        payment = first.principal + first.interest  # the installment stays; the term shortens
    rebuilt = build_installments(loan.terms, rules, remaining, first.number, len(future), loan.balloon_minor, payment)
    loan.installments = kept + rebuilt
