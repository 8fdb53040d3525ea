"""The reconciliation's matching, item by item, on items built by hand: no processes, no network.

Each test starts from a day where every stage has every item once (the ledger stages' items
made from real Posting messages, so the split is read from the accounts) and spoils one thing."""

import argparse
import types

import pytest

from bank.common.v1 import types_pb2
from bank.ledger.v1 import ledger_pb2
from bank.loans.v1 import loans_pb2
from bank.payments.v1 import payments_pb2
from paymesh import chart_of_accounts as coa
from paymesh_tools import reconcile
from paymesh_tools.reconcile import (BOOK, CONFIRMED, CORES_STAGE, PAYMENT, POSTED, REVERSAL, REVISION, ROUTER, SENT,
                                     STAGES, Item, LateItem, Split, match)

D, NEXT = "2026-11-27", "2026-11-30"  # a Friday and the next business day
CASH, MORTGAGE = types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE
ATM, AGENT = types_pb2.CHANNEL_ATM, types_pb2.CHANNEL_AGENT
CORE_NAME = {CASH: "core-cash", MORTGAGE: "core-mortgage"}


def posting(pid: str, kind: str, channel: types_pb2.Channel, loan_type: types_pb2.LoanType, split: Split, booked: str,
            currency: str = "PEN") -> ledger_pb2.Posting:
    """The balanced posting the bridge would send: the channel's clearing account against the
    product's accounts, sides swapped for a reversal."""
    accounts = [coa.product_account(coa.LOAN_PRINCIPAL, loan_type), coa.product_account(coa.INTEREST_INCOME, loan_type),
                coa.product_account(coa.PENALTY_INTEREST_INCOME, loan_type),
                coa.product_account(coa.FEE_INCOME, loan_type), coa.LIFE_INSURANCE_PAYABLE]
    debit, credit = ledger_pb2.ENTRY_SIDE_DEBIT, ledger_pb2.ENTRY_SIDE_CREDIT
    to_clearing, to_parts = (credit, debit) if kind == REVERSAL else (debit, credit)

    def entry(n, account, side, amount):
        return ledger_pb2.LedgerEntry(entry_id=f"{pid}-{kind}-{n}", account=account, side=side,
                                      amount=types_pb2.Money(currency_code=currency, amount_minor=amount))

    entries = [entry(0, coa.channel_clearing(channel), to_clearing, sum(split))]
    entries += [entry(n + 1, account, to_parts, part) for n, (account, part) in enumerate(zip(accounts, split)) if part]
    return ledger_pb2.Posting(posting_id=f"{pid}-{kind}", business_date=booked, payment_id=pid, channel=channel,
                              loan_type=loan_type, entries=entries)


def everywhere(pid: str, split: Split, *, kind: str = PAYMENT, channel: types_pb2.Channel = ATM,
               loan_type: types_pb2.LoanType = CASH,
               date: str = D, booked_at_mainframe: str | None = None, loan_id: str = "",
               key: str = "", accepted: int | None = None) -> dict[str, list[Item]]:
    """One item as each of the six stages reports it when all is well."""
    amount, booked = sum(split), booked_at_mainframe or date
    common = Item("", "", payment_id=pid, kind=kind, channel=channel, loan_type=loan_type, currency="PEN",
                  amount=amount, split=split, booked_date=date, original_date=date, loan_id=loan_id)
    ledger = posting(pid, kind, channel, loan_type, split, booked)
    return {
        ROUTER: [common._replace(stage=ROUTER, source="payment-router", idempotency_key=key or pid,
                                 accept_time=accepted)],
        CORES_STAGE: [common._replace(stage=CORES_STAGE, source=CORE_NAME[loan_type], ref=f"MV-{pid}-{kind}")],
        SENT: [reconcile.posting_item(ledger, SENT, "bridge", original_date=date)],
        POSTED: [reconcile.posting_item(ledger, POSTED, "bridge", original_date=date)],
        BOOK: [reconcile.posting_item(ledger, BOOK, "book")],
        CONFIRMED: [common._replace(stage=CONFIRMED, source="confirmations")],
    }


def day(*parts: dict[str, list[Item]]) -> dict[str, list[Item]]:
    merged: dict[str, list[Item]] = {stage: [] for stage in STAGES}
    for part in parts:
        for stage, items in part.items():
            merged[stage] += items
    return merged


def a_good_day() -> dict[str, list[Item]]:
    return day(everywhere("PAY-1", Split(80_00, 15_00, 0, 5_00, 0)),
               everywhere("PAY-2", Split(40_00, 10_00, 2_00, 0, 0)),
               everywhere("PAY-3", Split(900_00, 300_00, 0, 0, 45_00), loan_type=MORTGAGE),
               everywhere("PAY-2", Split(40_00, 10_00, 2_00, 0, 0), kind=REVERSAL))


def replace(items: dict[str, list[Item]], stage: str, pid: str, **changes) -> None:
    items[stage] = [i._replace(**changes) if i.payment_id == pid and i.kind == PAYMENT else i for i in items[stage]]


def only_break(outcome, pid: str):
    assert [b.payment_id for b in outcome.item_breaks] == [pid], reconcile.report(outcome, D, True)
    return outcome.item_breaks[0]


def test_a_day_where_every_stage_has_every_item_once_agrees():
    outcome = match(a_good_day(), D)
    text = reconcile.report(outcome, D, show_all=False)
    assert outcome.breaks == 0 and outcome.exit_code == 0, text
    assert outcome.stages == list(STAGES)
    assert outcome.matched == {PAYMENT: 3, REVERSAL: 1, REVISION: 0}
    # Two balance rows (cash and mortgage in PEN): cash 80 + 40 - 40, mortgage 900.
    assert [(b.core, b.currency, b.core_principal, b.book_principal) for b in outcome.balance] == [
        ("core-cash", "PEN", 80_00, 80_00), ("core-mortgage", "PEN", 900_00, 900_00)]
    assert outcome.checks == 4 + 2
    assert text.splitlines()[:3] == ["reconciliation of 2026-11-27", "0 breaks, 6 checks agree",
                                     "items matched: 3 payments, 1 reversals, 0 revisions; late items: 0; "
                                     "duplicate suspects: 0"]
    assert any(line.split()[:6] == ["whole", "day", "payments", "PEN", "3", "/"] and "1,397.00" in line
               for line in text.splitlines())


def test_a_cent_moved_from_one_payment_to_another_is_two_breaks_though_the_totals_agree():
    items = a_good_day()
    replace(items, CORES_STAGE, "PAY-1", amount=100_01, split=Split(80_01, 15_00, 0, 5_00, 0))
    replace(items, CORES_STAGE, "PAY-2", amount=51_99, split=Split(39_99, 10_00, 2_00, 0, 0))
    outcome = match(items, D)
    assert outcome.breaks == 2 and outcome.exit_code == 1
    assert [b.payment_id for b in outcome.item_breaks] == ["PAY-1", "PAY-2"]
    for b in outcome.item_breaks:
        assert b.stages == (CORES_STAGE,)
        assert [p.what for p in b.problems] == ["amount differs", "split differs"]
    assert outcome.item_breaks[0].problems[0].detail == "100.01 PEN at applied by cores; 100.00 PEN at the other stages"
    # What the totals-only reconciliation saw: every total of every stage the same.
    assert all(row[-1] == "ok" for row in outcome.rows)
    assert all(b.agrees for b in outcome.balance)  # +1 and -1 of principal in the same core
    text = reconcile.report(outcome, D, show_all=False)
    assert "2 breaks, 4 checks agree" in text
    assert any(line.startswith("PAY-1") and "amount differs" in line and "applied by cores" in line
               for line in text.splitlines())


def test_an_item_twice_in_a_core_is_a_break_and_its_principal_counts_twice():
    items = a_good_day()
    items[CORES_STAGE].append(items[CORES_STAGE][0]._replace(ref="MV-PAY-1-again"))
    outcome = match(items, D)
    problem, = only_break(outcome, "PAY-1").problems
    assert problem.what == "twice" and problem.stages == (CORES_STAGE,)
    assert "MV-PAY-1-again" in problem.detail
    cash = next(b for b in outcome.balance if b.core == "core-cash")
    assert (cash.core_principal, cash.book_principal) == (160_00, 80_00)
    assert outcome.breaks == 2  # the item and the cash balance


def test_a_posting_missing_in_the_mainframe_book_is_a_break_at_that_stage():
    items = a_good_day()
    items[BOOK] = [i for i in items[BOOK] if i.payment_id != "PAY-3"]
    outcome = match(items, D)
    problem, = only_break(outcome, "PAY-3").problems
    assert problem.what == "missing" and problem.stages == (BOOK,)
    assert "present at accepted by router, applied by cores" in problem.detail
    mortgage = next(b for b in outcome.balance if b.core == "core-mortgage")
    assert not mortgage.agrees and mortgage.book_principal == 0
    assert outcome.breaks == 2 and outcome.exit_code == 1


def test_a_posting_that_books_principal_as_interest_is_a_split_break():
    items = a_good_day()
    wrong = posting("PAY-1", PAYMENT, ATM, CASH, Split(70_00, 25_00, 0, 5_00, 0), D)  # same amount, 10.00 moved
    items[BOOK] = [reconcile.posting_item(wrong, BOOK, "book") if i.payment_id == "PAY-1" else i for i in items[BOOK]]
    outcome = match(items, D)
    problem, = only_break(outcome, "PAY-1").problems
    assert problem.what == "split differs" and problem.stages == (BOOK,)
    assert problem.detail == ("principal 70.00, interest 25.00, fees 5.00 at mainframe book; "
                              "principal 80.00, interest 15.00, fees 5.00 at the other stages")
    cash = next(b for b in outcome.balance if b.core == "core-cash")
    assert (cash.core_principal, cash.book_principal) == (80_00, 70_00)


def test_the_ledger_split_is_read_from_the_accounts_credited_or_for_a_reversal_debited():
    split = Split(900_00, 300_00, 1_00, 2_00, 45_00)
    payment = reconcile.posting_item(posting("P", PAYMENT, AGENT, MORTGAGE, split, D), SENT, "bridge", D)
    undone = reconcile.posting_item(posting("P", REVERSAL, AGENT, MORTGAGE, split, D), SENT, "bridge", D)
    assert (payment.kind, payment.amount, payment.split, payment.currency) == (PAYMENT, 1248_00, split, "PEN")
    assert (undone.kind, undone.amount, undone.split) == (REVERSAL, 1248_00, split)


def test_a_late_item_is_listed_not_a_break_on_its_original_day_and_on_the_day_it_was_booked():
    late = everywhere("PAY-9", Split(60_00, 0, 0, 0, 0), booked_at_mainframe=NEXT)
    assert late[SENT][0].late and late[BOOK][0].booked_date == NEXT

    original_day = match(day(a_good_day(), late), D)
    assert original_day.breaks == 0 and original_day.exit_code == 0
    assert original_day.late_items == [LateItem("PAY-9", PAYMENT, D, NEXT)]
    cash = next(b for b in original_day.balance if b.core == "core-cash")
    assert cash.agrees and cash.core_principal == 140_00  # counted in its own day's balance
    text = reconcile.report(original_day, D, show_all=False)
    assert "late items: 1" in text.splitlines()[2]
    assert "late item of 2026-11-27 booked in 2026-11-30" in text

    # The next day: its own payment, and the late one matched against the other stages' items of D.
    booked_day = match(day(everywhere("PAY-10", Split(30_00, 0, 0, 0, 0), date=NEXT), late), NEXT)
    assert booked_day.breaks == 0 and booked_day.matched == {PAYMENT: 2, REVERSAL: 0, REVISION: 0}
    assert booked_day.late_items == [LateItem("PAY-9", PAYMENT, D, NEXT)]
    assert [(b.core_principal, b.book_principal) for b in booked_day.balance] == [(30_00, 30_00)]


def test_payments_to_one_loan_of_one_amount_within_ten_minutes_are_suspects_not_breaks():
    t = 1_795_000_000
    same = dict(loan_id="CSH-00042", channel=ATM)
    items = day(a_good_day(),
                everywhere("PAY-20", Split(50_00, 0, 0, 0, 0), key="atm-k1", accepted=t, **same),
                everywhere("PAY-21", Split(50_00, 0, 0, 0, 0), key="atm-k2", accepted=t + 4 * 60 + 5, **same),
                # 11 minutes later: a payment of its own.
                everywhere("PAY-22", Split(50_00, 0, 0, 0, 0), key="atm-k3", accepted=t + 15 * 60 + 5, **same),
                # Same loan and amount within the window, but another channel.
                everywhere("PAY-23", Split(50_00, 0, 0, 0, 0), key="agent-k1", accepted=t + 60,
                           loan_id="CSH-00042", channel=AGENT))
    outcome = match(items, D)
    assert outcome.breaks == 0 and outcome.exit_code == 0
    assert [s.payment_ids for s in outcome.suspects] == [("PAY-20", "PAY-21")]
    assert outcome.suspects[0].seconds_apart == 245
    text = reconcile.report(outcome, D, show_all=False)
    assert "duplicate suspects: 1" in text.splitlines()[2]
    assert any("PAY-20 and PAY-21" in line and "4m05s" in line for line in text.splitlines())


def test_a_customer_paying_the_same_amount_again_and_again_is_one_suspect_not_one_per_pair():
    t = 1_795_000_000
    same = dict(loan_id="CSH-00042", channel=ATM)
    presses = [everywhere(f"PAY-4{n}", Split(50_00, 0, 0, 0, 0), key=f"atm-p{n}", accepted=t + 100 * n, **same)
               for n in range(5)]
    outcome = match(day(a_good_day(), *presses), D)
    assert [s.payment_ids for s in outcome.suspects] == [tuple(f"PAY-4{n}" for n in range(5))]
    assert outcome.suspects[0].seconds_apart == 400 and outcome.breaks == 0


def test_a_payment_still_accepted_at_the_router_is_a_break_accepted_not_applied():
    items = a_good_day()
    items[ROUTER].append(Item(ROUTER, "payment-router", "PAY-30", PAYMENT, ATM, CASH, "PEN", 10_00, Split(), D, D,
                              pending=True))
    problem, = only_break(match(items, D), "PAY-30").problems
    assert problem.what == "accepted, not applied" and problem.stages == (ROUTER,)


def test_a_source_unavailable_leaves_its_loan_types_out_and_exits_2():
    items = a_good_day()
    items[CORES_STAGE] = [i for i in items[CORES_STAGE] if i.loan_type != CASH]  # core-cash did not answer
    outcome = match(items, D, unavailable=[("core-cash", "UNAVAILABLE: connection refused")],
                    left_out=frozenset([CASH]))
    assert outcome.breaks == 0 and outcome.exit_code == 2
    assert outcome.matched == {PAYMENT: 1, REVERSAL: 0, REVISION: 0}  # only the mortgage payment was compared
    text = reconcile.report(outcome, D, show_all=False)
    assert "source unavailable: core-cash (UNAVAILABLE: connection refused)" in text
    assert "not compared (a source for them is unavailable): cash" in text


def test_fewer_than_two_stages_is_incomplete():
    outcome = match({ROUTER: a_good_day()[ROUTER]}, D)
    assert outcome.breaks == 0 and outcome.exit_code == 2
    assert "fewer than two stages" in reconcile.report(outcome, D, show_all=False)


class FakeSource:
    """A source answering from memory: date -> items, or a SourceUnavailable to raise."""

    def __init__(self, name, stage, by_date, loan_types=reconcile.ALL_LOAN_TYPES):
        self.name, self.stage, self.loan_types, self.by_date, self.asked = name, stage, loan_types, by_date, []

    async def items(self, business_date):
        self.asked.append(business_date)
        answer = self.by_date.get(business_date, [])
        if isinstance(answer, Exception):
            raise answer
        return answer


def sources_for(days: dict[str, dict[str, list[Item]]]) -> list[FakeSource]:
    return [FakeSource(stage, stage, {date: items[stage] for date, items in days.items()}) for stage in STAGES]


async def test_reconcile_asks_the_other_days_late_items_need_and_takes_only_those():
    late = everywhere("PAY-9", Split(60_00, 0, 0, 0, 0), booked_at_mainframe=NEXT)
    d_items, next_items = day(a_good_day(), late), day(everywhere("PAY-10", Split(30_00, 0, 0, 0, 0), date=NEXT))
    # What each service really answers: the ledger lists the late posting under both days, the
    # mainframe's book only under the day it booked it in, the others only under its own day.
    asked_d = {**d_items, BOOK: [i for i in d_items[BOOK] if i.payment_id != "PAY-9"]}
    asked_next = {**next_items, SENT: next_items[SENT] + late[SENT], POSTED: next_items[POSTED] + late[POSTED],
                  BOOK: next_items[BOOK] + late[BOOK]}
    sources = sources_for({D: asked_d, NEXT: asked_next})
    outcome = await reconcile.reconcile(sources, D)
    assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, D, True)
    assert outcome.late_items == [LateItem("PAY-9", PAYMENT, D, NEXT)]
    assert outcome.matched == {PAYMENT: 4, REVERSAL: 1, REVISION: 0}  # PAY-10 of the book of NEXT left aside
    assert {s.stage: s.asked for s in sources}[BOOK] == [D, NEXT]

    sources = sources_for({D: asked_d, NEXT: asked_next})
    outcome = await reconcile.reconcile(sources, NEXT)
    assert outcome.breaks == 0 and outcome.matched == {PAYMENT: 2, REVERSAL: 0, REVISION: 0}, \
        reconcile.report(outcome, NEXT, True)
    asked = {s.stage: s.asked for s in sources}
    assert asked[ROUTER] == [NEXT, D] and asked[SENT] == [NEXT] and asked[BOOK] == [NEXT]


async def test_reconcile_reports_a_source_that_does_not_answer():
    items = a_good_day()
    sources = sources_for({D: items})
    core = next(s for s in sources if s.stage == CORES_STAGE)
    core.loan_types = frozenset([CASH])
    core.by_date = {D: reconcile.SourceUnavailable("UNAVAILABLE: down")}
    mortgage = FakeSource("core-mortgage", CORES_STAGE, {D: [i for i in items[CORES_STAGE] if i.loan_type == MORTGAGE]},
                          frozenset([MORTGAGE]))
    vehicle = FakeSource("core-vehicle", CORES_STAGE, {D: []}, frozenset([types_pb2.LOAN_TYPE_VEHICLE]))
    outcome = await reconcile.reconcile([*sources, mortgage, vehicle], D)
    assert outcome.exit_code == 2 and outcome.breaks == 0
    assert outcome.unavailable == [(CORES_STAGE, "UNAVAILABLE: down")] and outcome.left_out == frozenset([CASH])


def test_router_payments_become_their_movements_of_the_day():
    allocation = loans_pb2.Allocation(principal_minor=70_00, prepayment_minor=10_00, interest_minor=20_00)
    money = types_pb2.Money(currency_code="PEN", amount_minor=100_00)

    def paid(status, reversed_on=""):
        return payments_pb2.Payment(payment_id="P", channel=ATM, loan_type=CASH, loan_id="CSH-1", amount=money,
                                    status=status, allocation=allocation, business_date=D,
                                    reversal_business_date=reversed_on)

    S = types_pb2
    assert [i.kind for i in reconcile.payment_items(paid(S.PAYMENT_STATUS_APPLIED), D)] == [PAYMENT]
    assert reconcile.payment_items(paid(S.PAYMENT_STATUS_APPLIED), D)[0].split == Split(80_00, 20_00, 0, 0, 0)
    assert [i.kind for i in reconcile.payment_items(paid(S.PAYMENT_STATUS_REVERSED, D), D)] == [PAYMENT, REVERSAL]
    assert [i.kind for i in reconcile.payment_items(paid(S.PAYMENT_STATUS_REVERSED, NEXT), NEXT)] == [REVERSAL]
    assert reconcile.payment_items(paid(S.PAYMENT_STATUS_REJECTED), D) == []
    assert [i.pending for i in reconcile.payment_items(paid(S.PAYMENT_STATUS_ACCEPTED), D)] == [True]


def test_stage_names_stay_what_callers_filter_by():
    stages = [s.stage for s in reconcile.default_sources(types.SimpleNamespace(pki_dir=None))]
    assert set(stages) == {"accepted by router", "applied by cores", "sent to ledger", "posted by mainframe",
                           "mainframe book", "confirmed"}


@pytest.mark.parametrize("text", ["2026-13-01", "27/11/2026", "20261127", "2026-W48-5", ""])
def test_a_malformed_date_is_refused_by_the_command_line(text, capsys):
    parser = argparse.ArgumentParser(prog="paymesh reconcile")
    reconcile.add_arguments(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--date", text])
    assert exit_.value.code == 2
    assert "is not a date YYYY-MM-DD" in capsys.readouterr().err
    assert parser.parse_args(["--date", "2026-11-27"]).date == "2026-11-27"


def test_a_revision_is_matched_by_its_id_with_its_signed_change_and_not_looked_for_at_the_router():
    """A later payment revised by the reversal of an earlier one: 21.51 of principal became 14.51 of
    interest and 7.00 of penalty. Its posting has no clearing line; its amount is 0."""
    debit, credit = ledger_pb2.ENTRY_SIDE_DEBIT, ledger_pb2.ENTRY_SIDE_CREDIT
    lines = [(coa.product_account(coa.INTEREST_INCOME, CASH), credit, 14_51),
             (coa.product_account(coa.LOAN_PRINCIPAL, CASH), debit, 21_51),
             (coa.product_account(coa.PENALTY_INTEREST_INCOME, CASH), credit, 7_00)]
    difference = ledger_pb2.Posting(
        posting_id="PAY-2:R1", business_date=D, payment_id="PAY-2", channel=AGENT, loan_type=CASH,
        entries=[ledger_pb2.LedgerEntry(entry_id=f"PAY-2:R1:{n}", account=account, side=side,
                                        amount=types_pb2.Money(currency_code="PEN", amount_minor=amount))
                 for n, (account, side, amount) in enumerate(lines, start=1)])
    item = reconcile.posting_item(difference, SENT, "bridge", D)
    change = Split(principal=-21_51, interest=14_51, penalty=7_00)
    assert (item.payment_id, item.kind, item.amount, item.split) == ("PAY-2:R1", REVISION, 0, change)
    revised = {stage: [item._replace(stage=stage)] for stage in STAGES if stage != ROUTER}
    outcome = match(day(a_good_day(), revised), D)
    assert outcome.breaks == 0 and outcome.matched[REVISION] == 1, reconcile.report(outcome, D, True)
    cash = next(b for b in outcome.balance if b.core == "core-cash")
    assert cash.core_principal == cash.book_principal == 80_00 - 21_51  # the revision's principal counts
    del revised[BOOK]
    assert only_break(match(day(a_good_day(), revised), D), "PAY-2:R1").problems[0].what == "missing"
