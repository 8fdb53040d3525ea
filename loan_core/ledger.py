"""The balanced ledger movement of an applied payment, and of its reversal.

A payment debits the channel's clearing account for the whole amount and credits each
part of the allocation to the product's account (paymesh.chart_of_accounts). A reversal
is the same lines with the sides swapped. A revision (a later payment applied again after an
earlier one was reversed) posts the difference per account, with no clearing line since the
amount paid is unchanged. Entry ids are "<posting_id>:<n>", so a replay names the same entries.
"""

from collections.abc import Sequence

from bank.ledger.v1 import ledger_pb2
from loan_core.engine import Allocation
from loan_core.rules import ProductRules
from paymesh import chart_of_accounts as coa

DEBIT, CREDIT = ledger_pb2.ENTRY_SIDE_DEBIT, ledger_pb2.ENTRY_SIDE_CREDIT


def payment_posting(
    posting_id: str, payment_id: str, business_date: str, channel: int, currency: str,
    allocation: Allocation, rules: ProductRules,
) -> ledger_pb2.Posting:
    return ledger_pb2.Posting(**payment_posting_fields(posting_id, payment_id, business_date, channel, currency,
                                                       allocation, rules))


def payment_posting_fields(
    posting_id: str, payment_id: str, business_date: str, channel: int, currency: str,
    allocation: Allocation, rules: ProductRules,
) -> dict:
    """payment_posting as plain fields, for building it inside a bigger message in one go
    (nested messages made first are copied in again: twice the cost per payment)."""
    product = rules.loan_type
    lines = [(coa.channel_clearing(channel), DEBIT, allocation.total)]
    credits = [
        (coa.product_account(coa.FEE_INCOME, product), allocation.fees),
        (coa.product_account(coa.PENALTY_INTEREST_INCOME, product), allocation.penalty_interest),
        (coa.product_account(coa.INTEREST_INCOME, product), allocation.interest),
        (coa.LIFE_INSURANCE_PAYABLE, allocation.life_insurance),
        (rules.asset_insurance_account, allocation.asset_insurance),
        (coa.product_account(coa.LOAN_PRINCIPAL, product), allocation.principal + allocation.prepayment),
        (coa.product_account(coa.CUSTOMER_CREDIT, product), allocation.overpayment),
    ]
    for account, amount in credits:
        if amount:
            if account is None:  # a product without asset insurance charged some: never book it nowhere
                raise ValueError(f"{amount} of asset insurance on a {product} loan, which has none")
            lines.append((account, CREDIT, amount))
    return _posting_fields(posting_id, payment_id, business_date, channel, product, currency, lines)


def reversal_posting(reversal_id: str, business_date: str, original: ledger_pb2.Posting,
                     revisions: Sequence[ledger_pb2.Posting] = ()) -> ledger_pb2.Posting:
    """Undoes a payment: its posting's lines with the sides swapped, as last revised (with the
    revisions' differences netted in)."""
    now = net_lines([original, *revisions])
    lines = [(account, DEBIT if amount > 0 else CREDIT, abs(amount)) for account, amount in now.items() if amount]
    currency = original.entries[0].amount.currency_code
    return ledger_pb2.Posting(**_posting_fields(reversal_id, original.payment_id, business_date, original.channel,
                                                original.loan_type, currency, lines))


def revision_posting(revision_id: str, business_date: str, before: Sequence[ledger_pb2.Posting],
                     after: ledger_pb2.Posting) -> ledger_pb2.Posting | None:
    """The difference from a payment's lines as posted so far (its posting and its revisions'
    differences) to how it is spent now: an account that gets more is credited the difference,
    one that gets less is debited it. Balanced, as both are; the clearing account's line is
    the same amount both times, so it nets out. None when nothing changed."""
    was, now = net_lines(before), net_lines([after])
    accounts = list(dict.fromkeys([*was, *now]))  # the order they first appear: a stable posting
    lines = [(account, CREDIT if change > 0 else DEBIT, abs(change))
             for account in accounts if (change := now.get(account, 0) - was.get(account, 0))]
    if not lines:
        return None
    currency = after.entries[0].amount.currency_code
    return ledger_pb2.Posting(**_posting_fields(revision_id, after.payment_id, business_date, after.channel,
                                                after.loan_type, currency, lines))


def net_lines(postings: Sequence[ledger_pb2.Posting]) -> dict[str, int]:
    """Each account's net over the postings, credits positive, in the order accounts first appear."""
    net: dict[str, int] = {}
    for posting in postings:
        for e in posting.entries:
            net[e.account] = net.get(e.account, 0) + (e.amount.amount_minor if e.side == CREDIT
                                                      else -e.amount.amount_minor)
    return net


def _posting_fields(posting_id, payment_id, business_date, channel, loan_type, currency, lines) -> dict:
    return {
        "posting_id": posting_id,
        "business_date": business_date,
        "payment_id": payment_id,
        "channel": channel,
        "loan_type": loan_type,
        "entries": [
            {"entry_id": f"{posting_id}:{n}", "account": account, "side": side,
             "amount": {"currency_code": currency, "amount_minor": amount}}
            for n, (account, side, amount) in enumerate(lines, start=1)
        ],
    }


def is_balanced(posting: ledger_pb2.Posting) -> bool:
    debits = sum(e.amount.amount_minor for e in posting.entries if e.side == DEBIT)
    credits = sum(e.amount.amount_minor for e in posting.entries if e.side == CREDIT)
    return debits == credits and debits > 0
