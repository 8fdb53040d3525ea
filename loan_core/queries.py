"""The read-only lookups: a loan with its schedule and balances on a date, and the
movements of a business date with the day's totals (for reconciliation)."""

import functools
import sqlite3
from datetime import date

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from loan_core import engine, money, store, validation
from paymesh.errors import Refused
from loan_core.apply import LoanCache
from loan_core.loan import LoanState, LoanTerms, build_installments
from loan_core.rules import ProductRules

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


def get_loan(connection: sqlite3.Connection, rules: ProductRules, loans: LoanCache, loan_id: str,
             on: date) -> loans_pb2.Loan:
    """The loan as the core holds it (from its cache of loans as last committed, read on a miss)."""
    validation.check_loan_id(loan_id, rules)
    found = loans.get(connection, loan_id)
    if found is None:
        raise Refused(errors_pb2.ERROR_REASON_LOAN_NOT_FOUND, f"loan {loan_id} does not exist", "loan_id")
    return loan_message(found[0], rules, on)


def borrower_loans(connection: sqlite3.Connection, rules: ProductRules, loans: LoanCache, borrower_id: str,
                   on: date) -> list[loans_pb2.Loan]:
    """The borrower's loans of this core, in loan id order; none is no error (another core may hold them)."""
    validation.check_id(borrower_id, "borrower_id")
    views = []
    for loan_id in store.loan_ids_of_borrower(connection, borrower_id):
        found = loans.get(connection, loan_id)
        if found is not None:
            views.append(loan_message(found[0], rules, on))
    return views


def loan_message(state: LoanState, rules: ProductRules, on: date) -> loans_pb2.Loan:
    terms = state.terms
    view = engine.as_of(state, rules, on)
    due, _ = engine.due_installments(view, on)
    today = on.toordinal()
    late = [i for i in due if engine.is_late(i, on)]
    overdue = bool(late)
    days_past_due = today - late[0].due if late else 0
    in_currency = lambda amount: types_pb2.Money(currency_code=terms.currency_code, amount_minor=amount)  # noqa: E731
    return loans_pb2.Loan(
        loan_id=terms.loan_id,
        loan_type=terms.loan_type,
        borrower_id=terms.borrower_id,
        currency_code=terms.currency_code,
        principal_minor=terms.principal_minor,
        annual_rate_bps=terms.annual_rate_bps,
        term_months=terms.term_months,
        disbursement_date=terms.disbursement_date.isoformat(),
        status=(loans_pb2.LOAN_STATUS_PAID_OFF if view.paid_off
                else loans_pb2.LOAN_STATUS_OVERDUE if overdue else loans_pb2.LOAN_STATUS_CURRENT),
        outstanding_principal=in_currency(view.outstanding_principal),
        amount_due=in_currency(sum(i.outstanding for i in due)),
        payoff_amount=in_currency(engine.payoff_amount(view, on)),
        schedule=[
            loans_pb2.Installment(
                number=i.number, due_date=i.due_date.isoformat(), principal_minor=i.principal,
                interest_minor=i.interest, insurance_minor=i.insurance, outstanding_minor=i.outstanding,
                status=_installment_status(i, today), penalty_interest_minor=i.penalty_accrued - i.paid_penalty,
                fees_minor=i.fee_charged - i.paid_fee,
            )
            for i in view.installments
        ],
        balloon_minor=view.balloon_minor,
        prepaid_minor=view.prepaid_minor,
        tcea_bps=tcea_bps(terms, rules),
        days_past_due=days_past_due,
        risk_category=risk_category(days_past_due, rules),
        as_of_date=on.isoformat(),
    )


@functools.lru_cache(maxsize=4096)
def tcea_bps(terms: LoanTerms, rules: ProductRules) -> int:
    """The loan's TCEA: its installments as scheduled at disbursement, insurance included."""
    schedule = build_installments(terms, rules, terms.principal_minor, 1, terms.term_months, terms.balloon_minor)
    return money.effective_annual_cost_bps(terms.principal_minor, [i.scheduled_total for i in schedule])


_CATEGORIES = (loans_pb2.RISK_CATEGORY_NORMAL, loans_pb2.RISK_CATEGORY_POTENTIAL_PROBLEMS,
               loans_pb2.RISK_CATEGORY_SUBSTANDARD, loans_pb2.RISK_CATEGORY_DOUBTFUL)


def risk_category(days_past_due: int, rules: ProductRules) -> loans_pb2.RiskCategory:
    """The SBS category of a debtor this many days past due, by the product's thresholds."""
    for most_days, category in zip(rules.risk_category_days, _CATEGORIES):
        if days_past_due <= most_days:
            return category
    return loans_pb2.RISK_CATEGORY_LOSS


def _installment_status(installment, today: int) -> loans_pb2.InstallmentStatus:
    if installment.outstanding == 0:
        return loans_pb2.INSTALLMENT_STATUS_PAID
    if today > engine.falls_due(installment.due):
        return loans_pb2.INSTALLMENT_STATUS_OVERDUE
    paid = installment.paid_principal + installment.paid_interest + installment.paid_insurance
    return loans_pb2.INSTALLMENT_STATUS_PARTIALLY_PAID if paid else loans_pb2.INSTALLMENT_STATUS_PENDING


def list_applied(connection: sqlite3.Connection, request) -> core_pb2.ListAppliedPaymentsResponse:
    validation.check_date(request.business_date, "business_date")
    if request.page_size < 0:
        raise Refused(validation.INVALID, "page_size must not be negative", "page_size")
    page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    after = 0
    if request.page_token:
        if not request.page_token.isdigit() or len(request.page_token) > 18:
            raise Refused(validation.INVALID, "page_token is not one this service gave", "page_token")
        after = int(request.page_token)
    rows = store.movements_of_day(connection, request.business_date, after, page_size + 1)
    response = core_pb2.ListAppliedPaymentsResponse()
    for _seq, movement_id, payment_id, loan_id, channel, currency, amount, kind, result in rows[:page_size]:
        response.movements.add(
            movement_id=movement_id, payment_id=payment_id, loan_id=loan_id, channel=channel,
            amount=types_pb2.Money(currency_code=currency, amount_minor=amount), reversal=kind == "reversal",
            allocation=_allocation_of(connection, kind, payment_id, result), business_date=request.business_date,
        )
    if len(rows) > page_size:
        response.next_page_token = str(rows[page_size - 1][0])
    else:  # the day's revisions after its last movement: a few, one per later payment a reversal changed
        for stored in store.revisions_of_day(connection, request.business_date):
            revision = core_pb2.PaymentRevision.FromString(stored)
            response.movements.add(
                movement_id=revision.revision_id, payment_id=revision.payment_id, loan_id=revision.loan_id,
                channel=revision.channel,
                amount=types_pb2.Money(currency_code=revision.amount.currency_code), revision=True,
                allocation=_difference(revision.allocation_before, revision.allocation),
                business_date=request.business_date,
            )
    for kind, currency, count, total in store.totals_of_day(connection, request.business_date):
        if kind == "payment":
            response.payment_count += count
            response.payment_totals.add(currency_code=currency, amount_minor=total)
        else:
            response.reversal_count += count
            response.reversal_totals.add(currency_code=currency, amount_minor=total)
    return response


def _allocation_of(connection: sqlite3.Connection, kind: str, payment_id: str, result: bytes) -> loans_pb2.Allocation:
    """How the movement spent its amount, from its stored first answer (a reversal gives back its
    payment's, as last revised)."""
    if kind == "reversal":
        reversal = core_pb2.ReversePaymentResponse.FromString(result)
        if reversal.HasField("allocation"):
            return reversal.allocation
        (result,) = connection.execute("SELECT result FROM movements WHERE payment_id = ? AND kind = 'payment'",
                                       (payment_id,)).fetchone()
    return core_pb2.PaymentOutcome.FromString(result).applied.allocation


def _difference(before: loans_pb2.Allocation, after: loans_pb2.Allocation) -> loans_pb2.Allocation:
    return loans_pb2.Allocation(**{field.name: getattr(after, field.name) - getattr(before, field.name)
                                   for field in loans_pb2.Allocation.DESCRIPTOR.fields})
