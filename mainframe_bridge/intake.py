"""Checks a posting before it is queued, and turns it into its stored form.

A refused posting is answered with a Rejection and never queued: fields that
are missing or do not fit the record (INVALID_FIELD), an account the ledger
does not know (UNKNOWN_ACCOUNT), debits that do not equal credits
(UNBALANCED_MOVEMENT). A posting is in one currency (a loan's).
"""

import datetime as dt
import functools
import hashlib
import re

from bank.common.v1 import errors_pb2
from bank.ledger.v1 import ledger_pb2
from mainframe_bridge import records
from mainframe_bridge.queue_store import Queued
from paymesh.chart_of_accounts import CHANNEL_CLEARING, every_account

ACCOUNTS = every_account()
# Used with fullmatch ("$" would let a final newline into a fixed-width record).
_PRINTABLE = re.compile(r"[!-~]([ -~]*[!-~])?")  # printable ASCII, no outer spaces: fits cp037 exactly
_CURRENCY = re.compile(r"[A-Z]{3}")
_ID_WIDTH = {"posting_id": records.HEADER.item("PH-POSTING-ID").digits,
             "payment_id": records.HEADER.item("PH-PAYMENT-ID").digits}
_ENTRY_ID_WIDTH = records.ENTRY.item("PE-ENTRY-ID").digits
_MAX_AMOUNT = 10 ** records.ENTRY.item("PE-AMOUNT").digits


def prepare(posting: ledger_pb2.Posting) -> Queued | errors_pb2.Rejection:
    """The Queued form of a valid posting, or the Rejection saying what is wrong."""
    # Each entry's fields read once from the message (every read of a protobuf field costs).
    rows = [(e.entry_id, e.account, e.side, e.amount.currency_code, e.amount.amount_minor) for e in posting.entries]
    violations = _field_violations(posting, rows)
    if violations:
        return _rejection(errors_pb2.ERROR_REASON_INVALID_FIELD,
                          f"posting {posting.posting_id or '(no id)'} is malformed: {violations[0][1]}", violations)
    unknown = [(f"entries[{i}].account", f"account {row[1]} is not in the chart of accounts")
               for i, row in enumerate(rows) if row[1] not in ACCOUNTS]
    if unknown:
        return _rejection(errors_pb2.ERROR_REASON_UNKNOWN_ACCOUNT,
                          f"posting {posting.posting_id}: {unknown[0][1]}", unknown)
    entries = tuple(records.Entry(entry_id, account, records.SIDES[side], currency, amount)
                    for entry_id, account, side, currency, amount in rows)
    off = records.imbalance(entries)
    if off:
        currency, amount = sorted(off.items())[0]
        return _rejection(errors_pb2.ERROR_REASON_UNBALANCED_MOVEMENT,
                          f"posting {posting.posting_id}: debits exceed credits by {amount} {currency}"
                          if amount > 0 else
                          f"posting {posting.posting_id}: credits exceed debits by {-amount} {currency}")
    posting_id, business_date = posting.posting_id, posting.business_date
    record = records.PostingRecord(posting_id, records.date_number(business_date), posting.payment_id,
                                   posting.channel, posting.loan_type, entries)
    clearing_credited = any(e.account.startswith(CHANNEL_CLEARING) and e.side == "C" for e in entries)
    return Queued(
        posting_id=posting_id, business_date=business_date, channel=record.channel,
        loan_type=record.loan_type, reversal=clearing_credited, currency=entries[0].currency,
        amount=sum(e.amount for e in entries if e.side == "D"),
        digest=hashlib.sha256(posting.SerializeToString(deterministic=True)).digest(),
        frame=records.encode_posting(record),
    )


def _field_violations(posting: ledger_pb2.Posting, rows: list[tuple]) -> list[tuple[str, str]]:
    found = []
    for name, width in _ID_WIDTH.items():
        value = getattr(posting, name)
        if not _PRINTABLE.fullmatch(value) or len(value) > width:
            found.append((name, f"{name} must be 1 to {width} printable ASCII characters"))
    if not _is_date(posting.business_date):
        found.append(("business_date", "business_date must be a date written YYYY-MM-DD"))
    if posting.channel not in records.CHANNELS:
        found.append(("channel", "channel must be one of the five channels"))
    if posting.loan_type not in records.LOAN_TYPES:
        found.append(("loan_type", "loan_type must be cash, mortgage or vehicle"))
    if not 2 <= len(rows) <= records.MAX_ENTRIES:
        found.append(("entries", f"a movement has 2 to {records.MAX_ENTRIES} entries"))
    currencies = set()
    for i, (entry_id, _, side, currency, amount) in enumerate(rows):
        if not _PRINTABLE.fullmatch(entry_id) or len(entry_id) > _ENTRY_ID_WIDTH:
            found.append((f"entries[{i}].entry_id", f"entry_id must be 1 to {_ENTRY_ID_WIDTH} printable characters"))
        if side not in records.SIDES:
            found.append((f"entries[{i}].side", "side must be DEBIT or CREDIT"))
        if not _CURRENCY.fullmatch(currency):
            found.append((f"entries[{i}].amount.currency_code", "currency_code must be an ISO 4217 code"))
        if not 0 < amount < _MAX_AMOUNT:
            found.append((f"entries[{i}].amount.amount_minor", "amount_minor must be a positive number of cents"))
        currencies.add(currency)
    if len(currencies) > 1:
        found.append(("entries", "every entry of a posting must be in the same currency"))
    return found


@functools.lru_cache(maxsize=64)  # a stream carries few distinct dates
def _is_date(text: str) -> bool:
    try:
        return len(text) == 10 and dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _rejection(reason: errors_pb2.ErrorReason, message: str, violations=()) -> errors_pb2.Rejection:
    return errors_pb2.Rejection(
        reason=reason, message=message,
        field_violations=[errors_pb2.FieldViolation(field=f, description=d) for f, d in violations],
    )
