"""Reversing a payment that is not the loan's latest (Fineract's reprocessing): the later
payments are applied again, in order and each on its own value date, as if the reversed one
had never been; each whose allocation changed gets a revision with the ledger's difference.
Through the real SQLite store; the figures worked out by hand beside each."""

import sqlite3
from datetime import date

import pytest

from bank.common.v1 import types_pb2
from bank.ledger.v1 import ledger_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from core_cash.rules import RULES as CASH
from loan_core import engine, ledger, queries, store
from loan_core.apply import LoanCache, apply_batch
from loan_core.client import payment
from loan_core.loan import originate
from loan_core.reversal import reverse_payment
from paymesh import chart_of_accounts as coa
from paymesh.errors import Refused
from paymesh.sqlite import _in_transaction, connect  # the Store's own BEGIN ... COMMIT, without its thread
from tests.loan_core.test_loan_engine import cash_terms

LOAN = "CSH-000001"  # 10,000.00 PEN at a TEA of 12 %, 12 months, disbursed 2026-01-10: 885.62 a month
INSTALLMENT = 885_62
DEBIT, CREDIT = ledger_pb2.ENTRY_SIDE_DEBIT, ledger_pb2.ENTRY_SIDE_CREDIT
PRINCIPAL, INTEREST, PENALTY = (coa.product_account(account, types_pb2.LOAN_TYPE_CASH)
                                for account in (coa.LOAN_PRINCIPAL, coa.INTEREST_INCOME, coa.PENALTY_INTEREST_INCOME))


class Core:
    """One cash loan in a real SQLite file, paid and reversed as the core's store thread does."""

    def __init__(self, path):
        self.connection = connect(path)
        self.connection.executescript(store.SCHEMA)
        store.migrate(self.connection)
        store.seed_if_empty(self.connection, [cash_terms()])
        self.loans = LoanCache(CASH)

    def pay(self, payment_id: str, on: str, amount: int = INSTALLMENT, channel=types_pb2.CHANNEL_AGENT):
        sent = payment(payment_id, LOAN, amount, "PEN", on, channel=channel)
        [outcome] = _in_transaction(self.connection, lambda c: apply_batch(c, [sent], rules=CASH, loans=self.loans))
        return outcome

    def reverse(self, reversal_id: str, payment_id: str, on: str) -> core_pb2.ReversePaymentResponse:
        request = core_pb2.ReversePaymentRequest(reversal_id=reversal_id, payment_id=payment_id, business_date=on,
                                                 reason="cheque bounced")
        return _in_transaction(self.connection, lambda c: reverse_payment(c, CASH, self.loans, request))

    def loan(self, on: date):
        """The loan as read back from the file (a cold cache)."""
        return queries.get_loan(self.connection, CASH, LoanCache(CASH), LOAN, on)


def lines(posting: ledger_pb2.Posting) -> list[tuple[str, int, int]]:
    return [(e.account, e.side, e.amount.amount_minor) for e in posting.entries]


def test_reversing_the_first_of_three_payments_reprocesses_the_other_two(tmp_path):
    core = Core(tmp_path / "cash.db")
    first, second, third = (core.pay(p, day) for p, day in (
        ("P1", "2026-02-10"), ("P2", "2026-03-10"), ("P3", "2026-04-10")))
    # Each paid its installment on its due date: P1 interest 94.89 on 10,000.00
    # (10,000.00 * 0.0094887929), principal 790.73; P2 interest 87.38 on 9,209.27, principal 798.24.
    assert (first.applied.allocation.interest_minor, first.applied.allocation.principal_minor) == (94_89, 790_73)
    assert (second.applied.allocation.interest_minor, second.applied.allocation.principal_minor) == (87_38, 798_24)

    reversed_ = core.reverse("R1", "P1", "2026-04-15")

    # P1's own lines, swapped: the clearing account credited 885.62 back, interest and principal debited.
    assert lines(reversed_.posting) == [(coa.channel_clearing(types_pb2.CHANNEL_AGENT), CREDIT, INSTALLMENT),
                                        (INTEREST, DEBIT, 94_89), (PRINCIPAL, DEBIT, 790_73)]
    assert reversed_.allocation == first.applied.allocation
    # Without P1, P2 (885.62 on 03-10) finds installment 1 28 days late: penalty interest at 12 % on its
    # 790.73 of principal, 790.73 * (1.12 ** (28/360) - 1) = 7.0007 -> 7.00, and the loan's own interest
    # on it for those days, the same 7.00 (the loan's TEA is also 12 %). It pays installment 1 in the
    # order penalty -> interest -> principal: 7.00, 94.89 + 7.00 = 101.89, and 885.62 - 108.89 = 776.73
    # of principal; 14.00 of installment 1's principal stays overdue.
    revised_second, revised_third = reversed_.revisions
    assert (revised_second.revision_id, revised_second.payment_id, revised_second.revision) == ("P2:R1", "P2", 1)
    assert revised_second.allocation_before == second.applied.allocation
    after = revised_second.allocation
    assert (after.penalty_interest_minor, after.interest_minor, after.principal_minor) == (7_00, 101_89, 776_73)
    # The ledger gets the difference: interest income 101.89 - 87.38 = 14.51 more, penalty 7.00 more,
    # principal 798.24 - 776.73 = 21.51 less; no clearing line (the customer paid the same 885.62).
    assert lines(revised_second.posting) == [(INTEREST, CREDIT, 14_51), (PRINCIPAL, DEBIT, 21_51),
                                             (PENALTY, CREDIT, 7_00)]
    assert revised_second.posting.posting_id == "P2:R1" and revised_second.business_date == "2026-04-15"
    assert revised_third.payment_id == "P3" and revised_third.allocation_before == third.applied.allocation
    for revision in reversed_.revisions:
        assert ledger.is_balanced(revision.posting)
        assert sum(allocation_parts(revision.allocation)) == INSTALLMENT

    # The loan is now exactly the loan that was only ever paid P2 and P3.
    never = Core(tmp_path / "never.db")
    never.pay("P2", "2026-03-10"), never.pay("P3", "2026-04-10")
    loan = never.loan(date(2026, 4, 15))
    assert core.loan(date(2026, 4, 15)) == loan
    assert reversed_.outstanding_balance == loan.outstanding_principal

    assert core.reverse("R1", "P1", "2026-04-15") == reversed_, "a replay gets the first answer, revisions and all"
    day = queries.list_applied(core.connection, core_pb2.ListAppliedPaymentsRequest(business_date="2026-04-15"))
    assert [(m.movement_id, m.reversal, m.revision) for m in day.movements] == [
        ("R1", True, False), ("P2:R1", False, True), ("P3:R1", False, True)]
    assert day.movements[1].allocation.principal_minor == -21_51 and day.movements[1].amount.amount_minor == 0


def test_a_revised_payment_reversed_later_takes_back_what_it_was_revised_to(tmp_path):
    core = Core(tmp_path / "cash.db")
    core.pay("P1", "2026-02-10"), core.pay("P2", "2026-03-10")
    revised = core.reverse("R1", "P1", "2026-03-12").revisions[0]
    reversed_second = core.reverse("R2", "P2", "2026-03-13")
    # Its reversal swaps its lines as last revised: 885.62 back to the clearing account, and the
    # 7.00 penalty, 101.89 interest and 776.73 principal of its revision taken back.
    assert reversed_second.allocation == revised.allocation
    assert sorted(lines(reversed_second.posting)) == sorted([
        (coa.channel_clearing(types_pb2.CHANNEL_AGENT), CREDIT, INSTALLMENT), (INTEREST, DEBIT, 101_89),
        (PRINCIPAL, DEBIT, 776_73), (PENALTY, DEBIT, 7_00)])
    assert core.loan(date(2026, 3, 13)) == Core(tmp_path / "never.db").loan(date(2026, 3, 13))


def test_a_payment_the_loan_no_longer_needs_is_kept_as_the_customers_credit():
    """A replay never refuses: the money was taken. On a loan already paid off all of it is the
    customer's; beyond a payoff, the surplus is, even from a digital channel."""
    state = originate(cash_terms(installments_paid=12), CASH)
    after, allocation = engine.apply_payment(state, CASH, 100_00, date(2027, 2, 1), 0, replaying=True)
    assert allocation == engine.Allocation(overpayment=100_00) and after.paid_off
    live = originate(cash_terms(installments_paid=11), CASH)
    on = date(2026, 12, 10)
    payoff = engine.payoff_amount(engine.as_of(live, CASH, on), on)
    with pytest.raises(Refused):
        engine.apply_payment(live, CASH, payoff + 5_00, on, 0)  # a digital channel's, applied the first time
    _, allocation = engine.apply_payment(live, CASH, payoff + 5_00, on, 0, replaying=True)
    assert allocation.overpayment == 5_00 and allocation.total == payoff + 5_00


def test_a_store_of_before_revisions_gets_the_new_columns_and_table(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(store.SCHEMA.replace(",\n    value_date TEXT,  -- the day the customer paid; NULL in stores of "
                                           "before it was kept: business_date\n    prepayment_mode INTEGER", ""))
    assert "value_date" not in {row[1] for row in old.execute("PRAGMA table_info(movements)")}
    old.close()
    core = Core(path)
    columns = {row[1] for row in core.connection.execute("PRAGMA table_info(movements)")}
    assert {"value_date", "prepayment_mode"} <= columns
    core.pay("P1", "2026-02-10"), core.pay("P2", "2026-03-10")
    assert len(core.reverse("R1", "P1", "2026-03-12").revisions) == 1


def allocation_parts(allocation) -> list[int]:
    return [getattr(allocation, field.name) for field in allocation.DESCRIPTOR.fields]
