"""How real loans enter a core: the origination system's loan master file, sent by the operator
(`paymesh loans import FILE --core cash`, the ImportLoans RPC). Every loan is checked against the
product's rules and its schedule computed by the engine before anything is written; then all of
them are inserted in one transaction, or none. A loan id already held with the same terms is
left as it is (the same file twice changes nothing); with other terms the request is refused.
The format: docs/loan-cores.md#onboarding-loans-from-the-origination-system."""

import dataclasses
import logging
import re
import sqlite3
from datetime import date

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core import store
from loan_core.loan import LoanTerms, originate
from loan_core.money import ppm_of
from loan_core.rules import ProductRules
from paymesh.business_calendar import bank_calendar, parse_date
from paymesh.chart_of_accounts import MAX_AMOUNT_MINOR
from paymesh.errors import Refused
from paymesh.loan_ids import loan_type_of

log = logging.getLogger(__name__)
MAX_LOANS_PER_IMPORT = 50_000  # one transaction, one message (well under the 16 MB a message may be)
MAX_VIOLATIONS = 100  # a file wrong throughout is refused with its first hundred faults
MAX_TERM_MONTHS = 480
MAX_RATE_BPS = 100_000  # a sanity bound (1000 % TEA): a rate beyond is a typing error
EARLIEST_DISBURSEMENT = date(1990, 1, 1)
_BORROWER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")


class Faults:
    """The violations found so far, each (field of the request, what is wrong)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, index: int, field: str, message: str) -> None:
        self.found.append((f"loans[{index}].{field}", message))


def terms_of(record: core_pb2.LoanRecord, index: int, rules: ProductRules, today: date,
             faults: Faults) -> LoanTerms | None:
    """The loan's terms, or None with what is wrong with it added to faults."""
    before = len(faults.found)

    def fault(field: str, message: str) -> None:
        faults.add(index, field, f"{record.loan_id or 'a loan'}: {message}")

    loan_type = loan_type_of(record.loan_id)
    if loan_type is None:
        fault("loan_id", "not a loan id (CSH-, MTG- or VEH- and 6 to 12 digits)")
    elif loan_type != rules.loan_type:
        fault("loan_id", f"not a {rules.service} loan id: that core holds it")
    if record.loan_type != rules.loan_type:
        fault("loan_type", f"{types_pb2.LoanType.Name(record.loan_type)} is not this core's product "
                           f"({types_pb2.LoanType.Name(rules.loan_type)})")
    if not _BORROWER_ID.fullmatch(record.borrower_id):
        fault("borrower_id", "must be the customer's opaque id: 1 to 40 letters, digits or -")
    currency = record.principal.currency_code
    lent_in = sorted(rules.portfolio.principal_range)
    if currency not in lent_in:
        fault("principal.currency_code", f"{currency!r} is not a currency the product lends in ({', '.join(lent_in)})")
    principal = record.principal.amount_minor
    if not 0 < principal <= MAX_AMOUNT_MINOR:
        fault("principal.amount_minor", f"must be more than 0 and at most {MAX_AMOUNT_MINOR} (minor units)")
    if not 0 < record.annual_rate_bps <= MAX_RATE_BPS:
        fault("annual_rate_bps", f"the TEA in basis points must be 1 to {MAX_RATE_BPS}")
    if not 1 <= record.term_months <= MAX_TERM_MONTHS:
        fault("term_months", f"must be 1 to {MAX_TERM_MONTHS}")
    disbursed = parse_date(record.disbursement_date)
    if disbursed is None:
        fault("disbursement_date", f"{record.disbursement_date!r} is not a date written YYYY-MM-DD")
    elif not EARLIEST_DISBURSEMENT <= disbursed <= today:
        fault("disbursement_date", f"{disbursed} is after today ({today}) or before {EARLIEST_DISBURSEMENT}")
    balloon = _amount(record.balloon, "balloon", currency, fault)
    if balloon and not rules.portfolio.balloon_share_percent:
        fault("balloon.amount_minor", "the product has no balloon installment")
    elif balloon is not None and principal > 0 and balloon >= principal:
        fault("balloon.amount_minor", "must be less than the principal")
    asset_value = _amount(record.asset_value, "asset_value", currency, fault)
    if asset_value and not rules.asset_insurance_ppm:
        fault("asset_value.amount_minor", "the product insures no asset")
    if not 0 <= record.installments_paid <= record.term_months:
        fault("installments_paid", "must be 0 to the term")
    if len(faults.found) > before:
        return None
    assert loan_type is not None and disbursed is not None and balloon is not None and asset_value is not None
    terms = LoanTerms(
        loan_id=record.loan_id, loan_type=loan_type, borrower_id=record.borrower_id, currency_code=currency,
        principal_minor=principal, annual_rate_bps=record.annual_rate_bps, term_months=record.term_months,
        disbursement_date=disbursed, balloon_minor=balloon,
        asset_insurance_minor=ppm_of(asset_value, rules.asset_insurance_ppm),
        installments_paid=record.installments_paid)
    try:
        originate(terms, rules)  # the engine's schedule: terms it cannot amortise are refused here
    except (ArithmeticError, ValueError) as bad:
        fault("term_months", f"the engine cannot build its schedule ({bad})")
        return None
    return terms


def _amount(money: types_pb2.Money, field: str, currency: str, fault) -> int | None:
    """An optional amount in the loan's currency: 0 when empty; None when wrong (a fault added)."""
    if not money.amount_minor:
        return 0
    if money.currency_code != currency:
        fault(f"{field}.currency_code", f"{money.currency_code!r} is not the loan's currency ({currency})")
        return None
    if not 0 < money.amount_minor <= MAX_AMOUNT_MINOR:
        fault(f"{field}.amount_minor", f"must be 0 to {MAX_AMOUNT_MINOR} (minor units)")
        return None
    return money.amount_minor


def check_loans(rules: ProductRules, request: core_pb2.ImportLoansRequest) -> list[tuple[int, LoanTerms]]:
    """Every loan's terms with its index in the request, checked and scheduled by the engine (CPU
    only: run off the store's thread, which payments need). Raises Refused with every fault found,
    each naming loans[i] and the field."""
    if not request.loans:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD, "the request has no loans", "loans")
    if len(request.loans) > MAX_LOANS_PER_IMPORT:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD,
                      f"at most {MAX_LOANS_PER_IMPORT} loans per import; this one has {len(request.loans)}", "loans")
    today, faults = bank_calendar().value_date(), Faults()
    seen: dict[str, int] = {}
    checked = []
    for index, record in enumerate(request.loans):
        terms = terms_of(record, index, rules, today, faults)
        if record.loan_id in seen:
            faults.add(index, "loan_id", f"{record.loan_id}: also at loans[{seen[record.loan_id]}]")
            continue
        seen[record.loan_id] = index
        if terms is not None:
            checked.append((index, terms))
    _refuse_if_any(faults)
    return checked


def add_loans(connection: sqlite3.Connection, loans: list[tuple[int, LoanTerms]],
              source: str) -> core_pb2.ImportLoansResponse:
    """In the caller's transaction: inserts the checked loans the core does not hold; one it holds
    with the same terms is left as it is, one with other terms refuses them all (Refused, nothing written)."""
    faults, new, unchanged = Faults(), [], 0
    for index, terms in loans:
        held = store.load_loan(connection, terms.loan_id)
        if held is None:
            new.append(terms)
        elif held[0] == terms:
            unchanged += 1
        else:
            differ = [f.name for f in dataclasses.fields(LoanTerms)
                      if getattr(held[0], f.name) != getattr(terms, f.name)]
            faults.add(index, "loan_id", f"{terms.loan_id}: the core already holds this loan with other terms "
                                         f"({', '.join(differ)}); a loan's terms never change by import")
    _refuse_if_any(faults)
    store.insert_loans(connection, new)
    log.info("loans imported", extra={"source": source[:200], "added": len(new), "unchanged": unchanged})
    return core_pb2.ImportLoansResponse(added=len(new), unchanged=unchanged)


def _refuse_if_any(faults: Faults) -> None:
    if faults.found:
        count = len(faults.found)
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD,
                      f"{count} fault{'s' if count > 1 else ''} in the loans; none was imported",
                      violations=faults.found[:MAX_VIOLATIONS])


def holds_loans(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM loans LIMIT 1").fetchone() is not None
