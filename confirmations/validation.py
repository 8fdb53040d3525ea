"""Checks on what callers send: each returns field violations [(field, description)], empty when fine."""

import datetime
import re

from bank.common.v1 import types_pb2
from bank.confirmations.v1.confirmations_pb2 import Confirmation, ConfirmationFilter
from paymesh.topology import CHANNEL_NAMES

RESULT_STATUSES = frozenset([types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REJECTED,
                             types_pb2.PAYMENT_STATUS_REVERSED])
LOAN_TYPES = frozenset([types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE, types_pb2.LOAN_TYPE_VEHICLE])
CONSUMER_NAME = re.compile(r"[a-z0-9-]{1,64}")
CURRENCY = re.compile(r"[A-Z]{3}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_ID_LENGTH = 128

Violations = list[tuple[str, str]]


def business_date(value: str, field: str = "business_date") -> Violations:
    if DATE.fullmatch(value):
        try:
            datetime.date.fromisoformat(value)
            return []
        except ValueError:
            pass
    return [(field, f"{value!r} is not a calendar date written YYYY-MM-DD")]


def confirmation(item: Confirmation) -> Violations:
    violations = []
    if not 0 < len(item.payment_id) <= MAX_ID_LENGTH:
        violations.append(("payment_id", f"must be 1 to {MAX_ID_LENGTH} characters"))
    if item.channel not in CHANNEL_NAMES:
        violations.append(("channel", "must be one of the five channels"))
    if item.status not in RESULT_STATUSES:
        violations.append(("status", "must be APPLIED, REJECTED or REVERSED"))
    if item.status == types_pb2.PAYMENT_STATUS_REJECTED:
        # A refused payment is confirmed as the channel sent it: its loan type or amount may be what was wrong.
        return violations + business_date(item.business_date)
    if item.loan_type not in LOAN_TYPES:
        violations.append(("loan_type", "must be CASH, MORTGAGE or VEHICLE"))
    if not CURRENCY.fullmatch(item.amount.currency_code):
        violations.append(("amount.currency_code", "must be an ISO 4217 code such as PEN or USD"))
    if item.amount.amount_minor < 0:
        violations.append(("amount.amount_minor", "must not be negative"))
    return violations + business_date(item.business_date)


def subscription_filter(value: ConfirmationFilter) -> Violations:
    violations = []
    for index, loan_type in enumerate(value.loan_types):
        if loan_type not in LOAN_TYPES:
            violations.append((f"filter.loan_types[{index}]", f"{loan_type} is not CASH, MORTGAGE or VEHICLE"))
    for index, status in enumerate(value.statuses):
        if status not in RESULT_STATUSES:
            violations.append((f"filter.statuses[{index}]", f"{status} is not APPLIED, REJECTED or REVERSED"))
    return violations


def consumer_name(name: str, required: bool) -> Violations:
    if not name and not required:
        return []
    if not CONSUMER_NAME.fullmatch(name):
        return [("consumer_name", "must be 1 to 64 characters of a-z, 0-9 and '-'")]
    return []
