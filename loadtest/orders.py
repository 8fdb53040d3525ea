"""What the load run pays, as channels come by it: a customer brings a loan number (or logs in to
the app, which lists their own loans), the channel asks the router what it owes (the debt inquiry)
and the customer pays that; bad orders of the kinds the business day sees; day files of the
payments an agent or a store took at the counter. Nothing here knows a loan but by asking."""

import random
import uuid

from bank.common.v1 import types_pb2
from bank.payments.v1 import payment_service_pb2 as api, payments_pb2
from loan_core.portfolio import PortfolioSettings, customer_ids
from payment_router.channel_policy import load_policies
from paymesh.business_calendar import bank_calendar
from paymesh.loan_ids import make_loan_id
from paymesh_tools.simulate_day import batch_requests

LOAN_TYPES = (types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE, types_pb2.LOAN_TYPE_VEHICLE)
POLICIES = load_policies()  # PAYMESH_CHANNEL_POLICY, as the router reads it
PORTFOLIO = PortfolioSettings.from_env()  # how many loans each core holds, as the cores read it
# The loan numbers customers bring, and the customers who log in to the digital channels.
LOAN_IDS = [make_loan_id(loan_type, n) for loan_type in LOAN_TYPES for n in range(1, PORTFOLIO.count + 1)]
CUSTOMERS = customer_ids(PORTFOLIO.count)


def business_date() -> str:
    """Today in the bank's calendar (PAYMESH_CLOCK_START moves it): the day files' collection date."""
    return bank_calendar().value_date().isoformat()


def some_loan_id() -> str:
    return random.choice(LOAN_IDS)


def some_customer() -> str:
    return random.choice(CUSTOMERS)


def good_order(channel: str, debt: api.LoanDebt) -> payments_pb2.PaymentOrder | None:
    """The amount the inquiry said is due, if the channel takes it (None: nothing to pay here)."""
    due = debt.amount_due.amount_minor
    if not 0 < due <= POLICIES[channel].max_amount_minor[debt.currency_code]:
        return None  # paid up, or more than this channel's cash limit: the customer pays elsewhere
    return payments_pb2.PaymentOrder(
        idempotency_key=f"lt-{channel[:4]}-{uuid.uuid4().hex}", loan_id=debt.loan_id,
        amount=types_pb2.Money(currency_code=debt.currency_code, amount_minor=due),
        channel_reference=f"{channel[:3].upper()}-{random.randrange(1, 200):04d}")


def bad_order(order: payments_pb2.PaymentOrder) -> payments_pb2.PaymentOrder:
    """A good order spoilt: an unknown loan, the wrong currency, a negative amount, or no key; each refused."""
    bad = payments_pb2.PaymentOrder()
    bad.CopyFrom(order)
    kind = random.randrange(4)
    if kind == 0:
        bad.loan_id = bad.loan_id[:4] + "999999"
    elif kind == 1:
        bad.amount.currency_code = "USD" if bad.amount.currency_code == "PEN" else "PEN"
    elif kind == 2:
        bad.amount.amount_minor = -bad.amount.amount_minor
    else:
        bad.idempotency_key = ""
    return bad


def batch_file(channel: str, orders: list[payments_pb2.PaymentOrder]) -> list[api.UploadBatchRequest]:
    """A day file's requests (header, lines, trailer) of the orders taken at the counter, under a new batch id."""
    batch_id = f"{channel[:5]}-{uuid.uuid4().hex[:24]}"
    return batch_requests(batch_id, business_date(), orders)
