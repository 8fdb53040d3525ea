"""The general ledger accounts paymesh posts to: the one list the loan cores
write entries against and the mainframe (and its emulator) accepts.

Codes are the mainframe's: six digits, the product or channel in the last two.
A loan payment debits the channel's clearing account and credits, per part of
the allocation, the product's principal, interest, penalty, fee or insurance
account. A reversal is the same movement with the sides swapped.
"""

from bank.common.v1 import types_pb2
from paymesh.topology import PRODUCTS

_CHANNEL_SUFFIX: dict[int, str] = {
    types_pb2.CHANNEL_APP: "01",
    types_pb2.CHANNEL_INTERNET_BANKING: "02",
    types_pb2.CHANNEL_AGENT: "03",
    types_pb2.CHANNEL_ATM: "04",
    types_pb2.CHANNEL_STORE: "05",
}
_PRODUCT_SUFFIX = {product.loan_type: product.ledger_suffix for product in PRODUCTS}

CHANNEL_CLEARING = "1105"  # money collected by a channel, owed to the bank
LOAN_PRINCIPAL = "1401"  # loans receivable (principal and prepayment)
INTEREST_INCOME = "5101"
PENALTY_INTEREST_INCOME = "5102"
FEE_INCOME = "5103"
LIFE_INSURANCE_PAYABLE = "210501"  # desgravamen, owed to the insurer
PROPERTY_INSURANCE_PAYABLE = "210502"
VEHICLE_INSURANCE_PAYABLE = "210503"
INSURANCE_ACCOUNTS = frozenset([LIFE_INSURANCE_PAYABLE, PROPERTY_INSURANCE_PAYABLE, VEHICLE_INSURANCE_PAYABLE])
CUSTOMER_CREDIT = "2107"  # what a customer paid beyond a payoff in cash: owed back to them
# The most one payment may be (99,999,999,999.99): far over any loan, far under what overflows a day
# file's totals (100,000 lines of it fit an int64) or the ledger's PIC S9(15) amounts.
MAX_AMOUNT_MINOR = 10 ** 13 - 1


def channel_clearing(channel: int) -> str:
    return CHANNEL_CLEARING + _CHANNEL_SUFFIX[channel]


def product_account(prefix: str, loan_type: types_pb2.LoanType) -> str:
    """For example product_account(INTEREST_INCOME, LOAN_TYPE_CASH) == "510101"."""
    return prefix + _PRODUCT_SUFFIX[loan_type]


def every_account() -> frozenset[str]:
    products = [
        product_account(prefix, loan_type)
        for prefix in (LOAN_PRINCIPAL, INTEREST_INCOME, PENALTY_INTEREST_INCOME, FEE_INCOME, CUSTOMER_CREDIT)
        for loan_type in _PRODUCT_SUFFIX
    ]
    return frozenset([*(channel_clearing(c) for c in _CHANNEL_SUFFIX), *products, *INSURANCE_ACCOUNTS])
