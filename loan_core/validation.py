"""Checks on a request's own fields, before any loan is read. Each failure is a
Refused with the reason and the field it is about."""

import re
from datetime import date

from bank.common.v1 import errors_pb2, types_pb2
from paymesh.chart_of_accounts import MAX_AMOUNT_MINOR
from paymesh.errors import Refused
from paymesh.loan_ids import PREFIXES, loan_type_of
from loan_core.rules import ProductRules
from paymesh.business_calendar import parse_date

MAX_ID_LENGTH = 128
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
_CURRENCY = re.compile(r"[A-Z]{3}")
CHANNELS = frozenset(v for v in types_pb2.Channel.values() if v != types_pb2.CHANNEL_UNSPECIFIED)
PREPAYMENT_MODES = frozenset(types_pb2.PrepaymentMode.values())
INVALID = errors_pb2.ERROR_REASON_INVALID_FIELD


def check_id(value: str, field_name: str) -> None:
    if not value:
        raise Refused(INVALID, f"{field_name} is required", field_name)
    if len(value) > MAX_ID_LENGTH or not _ID.fullmatch(value):
        raise Refused(INVALID, f"{field_name} must be 1 to {MAX_ID_LENGTH} letters, digits or . _ : -", field_name)


def check_date(value: str, field_name: str) -> date:
    parsed = parse_date(value)
    if parsed is None:
        raise Refused(INVALID, f"{field_name} {value!r} is not a date written YYYY-MM-DD", field_name)
    return parsed


def check_loan_id(loan_id: str, rules: ProductRules, field_name: str = "loan_id") -> None:
    loan_type = loan_type_of(loan_id)
    if loan_type is None:
        raise Refused(INVALID, f"{field_name} {loan_id[:40]!r} is not a loan id (CSH-, MTG- or VEH- and digits)",
                      field_name)
    if loan_type != rules.loan_type:
        raise Refused(errors_pb2.ERROR_REASON_WRONG_LOAN_TYPE,
                      f"loan {loan_id} is not held by {rules.service}; its prefix says another core, "
                      f"this core holds {PREFIXES[rules.loan_type]}- loans", field_name)


def check_payment_fields(payment) -> date:
    """A LoanPayment's own fields; returns its business date."""
    check_id(payment.payment_id, "payment_id")
    business_date = check_date(payment.business_date, "business_date")
    if payment.channel not in CHANNELS:
        raise Refused(INVALID, f"channel {payment.channel} is not one of the five channels", "channel")
    if payment.prepayment_mode not in PREPAYMENT_MODES:
        raise Refused(INVALID, f"prepayment_mode {payment.prepayment_mode} is unknown", "prepayment_mode")
    if not _CURRENCY.fullmatch(payment.amount.currency_code):
        raise Refused(INVALID, "amount.currency_code must be an ISO 4217 code such as PEN",
                      "amount.currency_code")
    if not 0 < payment.amount.amount_minor <= MAX_AMOUNT_MINOR:
        raise Refused(errors_pb2.ERROR_REASON_AMOUNT_INVALID,
                      f"the amount must be greater than zero and at most {MAX_AMOUNT_MINOR}, not"
                      f" {payment.amount.amount_minor}", "amount.amount_minor")
    return business_date
