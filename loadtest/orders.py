"""What the load run pays: the cores' loans (generated from the same portfolio settings
the cores read), good orders of the installment due within each channel's limit, bad
ones of the kinds the business day sees, and day files for agents and stores."""

import datetime as dt
import itertools
import random
import uuid
from dataclasses import dataclass

from bank.common.v1 import types_pb2
from bank.payments.v1 import payments_pb2
from paymesh_tools.products import RULES_OF_TYPE
from loan_core.portfolio import PortfolioSettings, amount_due, generate
from paymesh_tools.simulate_day import batch_requests
from payment_router.channel_policy import load_policies
from paymesh.business_calendar import bank_calendar

LOAN_TYPES = (types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE, types_pb2.LOAN_TYPE_VEHICLE)
POLICIES = load_policies()  # PAYMESH_CHANNEL_POLICY, as the router reads it


@dataclass(frozen=True)
class PayableLoan:
    loan_id: str
    currency: str
    due_minor: int  # its oldest installment due, with fees and penalty interest


def business_date() -> str:
    """Today in the bank's calendar (PAYMESH_CLOCK_START moves it): the day files' collection date."""
    return bank_calendar().value_date().isoformat()


def payable_loans() -> list[PayableLoan]:
    """Loans with an installment due on the business date that every channel may take, shuffled.
    The loan engine, run here on the loans as the cores generate them, says what is due, so a
    good order is an amount the core applies (not a refused partial payment or prepayment)."""
    portfolio = PortfolioSettings.from_env()
    on = dt.date.fromisoformat(business_date())
    # Only what every channel may take, so any channel pays the next loan in turn (none skipped, none twice).
    smallest_limit = {currency: min(policy.max_amount_minor[currency] for policy in POLICIES.values())
                      for currency in ("PEN", "USD")}
    loans = []
    for loan_type in LOAN_TYPES:
        for terms in generate(RULES_OF_TYPE[loan_type], seed=portfolio.seed, count=portfolio.count,
                              as_of=portfolio.as_of):
            if terms.term_months - terms.installments_paid < 3:
                continue  # nearly paid off: a second payment would be over the payoff
            due = amount_due(terms, RULES_OF_TYPE[terms.loan_type], on)
            if 0 < due <= smallest_limit[terms.currency_code]:
                loans.append(PayableLoan(terms.loan_id, terms.currency_code, due))
    random.shuffle(loans)  # another order each run, so runs on the same mesh pay other loans first
    return loans


LOANS = payable_loans()
# Every channel takes the next loan in turn, so no loan is paid twice until all were paid once.
_NEXT = itertools.cycle(LOANS)


def good_order(channel: str) -> payments_pb2.PaymentOrder:
    loan = next(_NEXT)
    return payments_pb2.PaymentOrder(
        idempotency_key=f"lt-{channel[:4]}-{uuid.uuid4().hex}", loan_id=loan.loan_id,
        amount=types_pb2.Money(currency_code=loan.currency, amount_minor=loan.due_minor),
        channel_reference=f"{channel[:3].upper()}-{random.randrange(1, 200):04d}")


def bad_order(channel: str) -> payments_pb2.PaymentOrder:
    """An unknown loan, the wrong currency, a negative amount, or no key: each refused, none applied."""
    order = good_order(channel)
    kind = random.randrange(4)
    if kind == 0:
        order.loan_id = order.loan_id[:4] + "999999"
    elif kind == 1:
        order.amount.currency_code = "USD" if order.amount.currency_code == "PEN" else "PEN"
    elif kind == 2:
        order.amount.amount_minor = -order.amount.amount_minor
    else:
        order.idempotency_key = ""
    return order


def batch_file(channel: str, lines: int):
    """A day file's requests (header, lines, trailer), under a new batch id."""
    batch_id = f"{channel[:5]}-{uuid.uuid4().hex[:24]}"
    return batch_requests(batch_id, business_date(), [good_order(channel) for _ in range(lines)])
