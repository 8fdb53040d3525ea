"""The loan engine every core shares: what is due on a business date, how a payment is
spent, and how the schedule is recomputed after a prepayment.

A payment settles, in this order: the overdue installments, oldest first; then the
installment in course (the one whose period contains the payment's date). Within an
installment: late fee, penalty interest, interest, insurance, principal. Beyond that:

- up to `adelanto_installments` installments more (two, Res. SBS 3274-2017 as we read it),
  with no mode asked: an **adelanto de cuotas**, the next installments paid ahead as
  scheduled (their due dates covered, nothing recomputed);
- more than that, or whenever the customer names a mode: a **pago anticipado**, a
  prepayment of principal. The installment in course is settled with the interest and
  insurance it has earned to the payment's date only, the rest goes to principal, and the
  schedule is recomputed (shorter term, or lower installment) with the next installment's
  interest running from the payment's date. Paying the loan off is a pago anticipado of all.

An amount over the payoff is refused, unless it came in cash at an agent, a store or an
ATM: then the loan is paid off and the surplus is the customer's (`overpayment`).
Functions here never change the state they are given.
"""

import copy
import functools
from dataclasses import dataclass
from datetime import date

from bank.common.v1 import errors_pb2, types_pb2
from loan_core.loan import Installment, LoanState, build_installments
from loan_core.money import div_half_even, interest_for_days, penalty_interest
from loan_core.rules import ProductRules
from paymesh.business_calendar import bank_calendar
from paymesh.errors import Refused

PREPAYMENT_MODES = (types_pb2.PREPAYMENT_MODE_REDUCE_TERM, types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT)
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
    overpayment: int = 0  # beyond the payoff, from a cash channel: the customer's, on the customer credit account

    @property
    def insurance(self) -> int:
        return self.life_insurance + self.asset_insurance

    @property
    def total(self) -> int:
        return (self.fees + self.penalty_interest + self.interest + self.insurance + self.principal
                + self.prepayment + self.overpayment)

    def fields(self) -> dict[str, int]:
        """As the fields of a bank.loans.v1.Allocation."""
        return {"fees_minor": self.fees, "penalty_interest_minor": self.penalty_interest,
                "interest_minor": self.interest, "insurance_minor": self.insurance,
                "principal_minor": self.principal, "prepayment_minor": self.prepayment,
                "overpayment_minor": self.overpayment}


@functools.lru_cache(maxsize=8192)
def falls_due(due: int) -> int:
    """The day (ordinal) an installment due on `due` must be paid by: that day, or the next business
    day when it falls on a weekend or holiday (the bank's calendar). Late only after it."""
    try:
        return bank_calendar().business_day_on_or_after(date.fromordinal(due)).toordinal()
    except OverflowError:  # a due date at the calendar's end (9999-12-31): nothing lies after it
        return due


def accrue(state: LoanState, rules: ProductRules, on: date) -> None:
    """Charges what late installments owe on `on`, for each day since they fell due (or since the
    last accrual): penalty interest and the loan's own (compensatory) interest on their unpaid
    principal; and the late fee, once, where the product charges one and more than its tolerance is unpaid."""
    today = on.toordinal()
    terms = state.terms
    late_fee = rules.late_fee_minor.get(terms.currency_code, 0)
    tolerance = rules.late_fee_tolerance_minor.get(terms.currency_code, 0)
    for installment in state.open_installments:
        if installment.due >= today:
            break  # installments fall due in order
        if installment.outstanding == 0:
            continue
        late_from = falls_due(installment.due)
        if today <= late_from:
            continue
        if late_fee and installment.fee_charged == 0 and installment.outstanding > tolerance:
            installment.fee_charged = late_fee
        since = max(late_from, installment.penalty_to)
        if today > since:
            base = installment.principal - installment.paid_principal
            installment.penalty_accrued += penalty_interest(base, rules.penalty_rate_bps, today - since)
            installment.interest += interest_for_days(base, terms.annual_rate_bps, today - since)
            installment.penalty_to = today


def period_start(state: LoanState, index: int) -> int:
    """The day (ordinal) installment `index`'s interest runs from: the previous due date (or the
    disbursement), or the day of a pago anticipado that recomputed it."""
    installment = state.installments[index]
    if installment.start:
        return installment.start
    return state.installments[index - 1].due if index else state.terms.disbursement_date.toordinal()


def started(state: LoanState, on: date) -> int:
    """The index of the first installment whose period has not started on `on`: those
    before it are settled or due, those from it on are untouched future installments."""
    today = on.toordinal()
    installments, index = state.installments, state.settled
    previous_due = installments[index - 1].due if index else state.terms.disbursement_date.toordinal()
    while index < len(installments) and (installments[index].start or previous_due) < today:
        previous_due = installments[index].due  # (period_start, inline: this loop runs for every payment)
        index += 1
    return index


def due_installments(state: LoanState, on: date) -> tuple[list[Installment], list[Installment]]:
    """(what is due on `on`: overdue installments and the one in course; the future ones)."""
    boundary = started(state, on)
    due = [i for i in state.installments[state.settled:boundary] if i.outstanding]
    # Nothing was ever paid on a future installment but what an adelanto paid ahead.
    future = [i for i in state.installments[boundary:]
              if i.paid_principal < i.principal or i.paid_interest < i.interest or i.paid_insurance < i.insurance]
    return due, future


def in_course(due: list[Installment], on: date) -> Installment | None:
    """The due installment whose period contains `on` (not yet at its due date), if unpaid."""
    return due[-1] if due and due[-1].due >= on.toordinal() else None


def is_late(installment: Installment, on: date) -> bool:
    return installment.outstanding > 0 and on.toordinal() > falls_due(installment.due)


def as_of(state: LoanState, rules: ProductRules, on: date) -> LoanState:
    """A copy of the loan with late charges accrued up to `on`. Only the installments due can
    change; settled and future ones are shared, not copied."""
    if on.toordinal() - state.terms.disbursement_date.toordinal() > HORIZON_DAYS:
        # Effective rates compound: centuries of arrears are numbers no ledger holds.
        raise Refused(errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE,
                      f"{on} is more than {HORIZON_DAYS // 365} years after the loan was disbursed"
                      f" ({state.terms.disbursement_date}): nothing is computed that far", "business_date")
    view = state.copy_range(state.settled, started(state, on))
    accrue(view, rules, on)
    return view


def earned_to_date(state: LoanState, course: Installment, on: date) -> tuple[int, int, int]:
    """(interest, life insurance, asset insurance) the installment in course has earned by `on`:
    interest on the balance for the days of its period gone by, at the loan's effective rate;
    insurance in proportion to those days. Never more than scheduled."""
    index = next(n for n in range(state.settled, len(state.installments)) if state.installments[n] is course)
    start, today = period_start(state, index), on.toordinal()
    balance = sum(i.principal for i in state.installments[index:])
    interest = min(course.interest, interest_for_days(balance, state.terms.annual_rate_bps, today - start))
    period = max(course.due - start, 1)
    elapsed = min(max(today - start, 0), period)
    life = div_half_even(course.life_insurance * elapsed, period)
    asset = div_half_even(course.asset_insurance * elapsed, period)
    return interest, life, asset


def payoff_amount(state: LoanState, on: date) -> int:
    """Everything that settles the loan on `on` (state already accrued to `on`): what is late in
    full, the installment in course with interest and insurance to `on`, the future principal."""
    due, future = due_installments(state, on)
    return _payoff(state, due, future, on)


def _payoff(state: LoanState, due: list[Installment], future: list[Installment], on: date) -> int:
    course = in_course(due, on)
    total = sum(i.outstanding for i in due if i is not course)
    total += sum(i.principal - i.paid_principal for i in future)
    if course is not None:
        total += _cut_to_date(state, course, on, dry_run=True).outstanding
    return total


def _payoff_at_least(due: list[Installment], future: list[Installment], course: Installment | None) -> int:
    """What the payoff cannot be less than, without working out the interest to the date: a payment
    below it is neither a payoff nor more than one (most payments: no decimals to compute)."""
    floor = sum(i.outstanding for i in due if i is not course) + sum(i.principal - i.paid_principal for i in future)
    if course is not None:
        floor += course.principal - course.paid_principal
    return floor


def apply_payment(
    state: LoanState, rules: ProductRules, amount: int, on: date, mode: int, surplus_allowed: bool = False,
    replaying: bool = False,
) -> tuple[LoanState, Allocation]:
    """The loan after paying amount on `on`, and how the amount was spent. surplus_allowed: the
    money is already in the bank's hands (cash at a channel): a surplus over the payoff is kept
    for the customer instead of refusing the payment. replaying: the payment was taken before and
    is applied again after an earlier one was reversed (loan_core.reversal), so nothing about the
    loan's state refuses it now: what no longer fits (beyond the payoff, a loan already paid off)
    is the customer's credit, a partial payment or a small prepayment is taken as it is."""
    surplus_allowed = surplus_allowed or replaying
    if amount <= 0:
        raise Refused(errors_pb2.ERROR_REASON_AMOUNT_INVALID, "the amount must be greater than zero",
                      "amount.amount_minor")
    if on < state.terms.disbursement_date:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD,
                      f"business date {on} is before the loan was disbursed", "business_date")
    if mode and mode not in PREPAYMENT_MODES:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD, f"unknown prepayment mode {mode}", "prepayment_mode")
    loan = as_of(state, rules, on)
    due, future = due_installments(loan, on)
    if not due and not future:
        if replaying:
            return loan, Allocation(overpayment=amount)
        raise Refused(errors_pb2.ERROR_REASON_LOAN_PAID_OFF, f"loan {state.terms.loan_id} is already paid off")
    course = in_course(due, on)
    payoff = _payoff(loan, due, future, on) if amount >= _payoff_at_least(due, future, course) else None
    allocation = Allocation()
    if payoff is not None and amount > payoff:
        if not surplus_allowed:
            raise Refused(errors_pb2.ERROR_REASON_AMOUNT_INVALID,
                          f"the amount {amount} is more than the {payoff} that pays the loan off on {on};"
                          f" pay {payoff} at most", "amount.amount_minor")
        allocation.overpayment, amount = amount - payoff, payoff
    # Less than the oldest installment due is partial, unless it is all the loan owes (a payoff to the date).
    smallest = 0 if not due else due[0].outstanding if payoff is None else min(due[0].outstanding, payoff)
    if not rules.partial_payments_allowed and amount < smallest and not replaying:
        raise Refused(errors_pb2.ERROR_REASON_PARTIAL_PAYMENT_NOT_ALLOWED,
                      f"this product does not take partial payments: installment {due[0].number} "
                      f"needs {due[0].outstanding}", "amount.amount_minor")
    left = amount
    for installment in due:
        if installment is course or left == 0:
            break
        left = _pay_installment(installment, left, allocation)
    if left:
        course_due = course.outstanding if course is not None else 0
        ahead = rules.adelanto_installments * future[0].scheduled_total if future else 0
        pays_off = payoff is not None and amount == payoff
        prepaying = pays_off or (left > course_due and (mode or left > course_due + ahead))
        if prepaying:
            _pay_ahead(loan, rules, course, future, left, on, mode or rules.default_prepayment_mode, allocation,
                       replaying)
        else:  # the installment in course as scheduled, then an adelanto de cuotas
            if course is not None:
                left = _pay_installment(course, left, allocation)
            for installment in future:
                if left == 0:
                    break
                left = _pay_installment(_own(loan, installment), left, allocation)
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


def _cut_to_date(loan: LoanState, course: Installment, on: date, dry_run: bool = False) -> Installment:
    """The installment in course cut to what it earned by `on` (what was paid already stays paid);
    dry_run: a copy, the loan unchanged."""
    interest, life, asset = earned_to_date(loan, course, on)
    cut = copy.copy(course) if dry_run else course
    cut.interest = max(interest, course.paid_interest)
    insurance = max(life + asset, course.paid_insurance)
    cut.life_insurance, cut.asset_insurance = min(life, insurance), insurance - min(life, insurance)
    return cut


def _pay_ahead(loan: LoanState, rules: ProductRules, course: Installment | None, future: list[Installment],
               amount: int, on: date, mode: int, allocation: Allocation, replaying: bool = False) -> None:
    """A pago anticipado: the installment in course settled to `on`, the rest off the future principal,
    the future installments recomputed (the first one's interest from `on`)."""
    if course is not None:
        _cut_to_date(loan, course, on)
        amount = _pay_installment(course, amount, allocation)
    # An installment an earlier adelanto paid part of is paid up first: what it has paid stays its own.
    while future and amount and _touched(future[0]):
        future[0] = _own(loan, future[0])
        amount = _pay_installment(future[0], amount, allocation)
        if future[0].outstanding == 0:
            future = future[1:]
    if amount == 0 or not future or _touched(future[0]):
        return
    balance = sum(i.principal for i in future)
    if amount < balance and rules.min_prepayment_installments and not replaying:
        minimum = rules.min_prepayment_installments * future[0].scheduled_total
        if amount < minimum:
            raise Refused(errors_pb2.ERROR_REASON_PREPAYMENT_NOT_ALLOWED,
                          f"a prepayment must be at least {minimum} (or pay the loan off); this one is {amount}",
                          "amount.amount_minor")
    allocation.prepayment += amount
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
    # The days from `on` to the next due date earn interest on the new balance (course is cut to `on`).
    start = on.toordinal() if course is not None else None
    loan.installments = kept + build_installments(loan.terms, rules, remaining, first.number, len(future),
                                                  loan.balloon_minor, payment, start)


def _own(loan: LoanState, installment: Installment) -> Installment:
    """A copy of a future installment in the loan's place of it, to pay: future installments are
    shared with the state the engine was given (as_of copies only those due)."""
    index = next(n for n in range(loan.settled, len(loan.installments)) if loan.installments[n] is installment)
    loan.installments[index] = copy.copy(installment)
    return loan.installments[index]


def _touched(installment: Installment) -> bool:
    return bool(installment.paid_fee or installment.paid_penalty or installment.paid_interest
                or installment.paid_insurance or installment.paid_principal)
