"""The shared loan engine: French schedules, the order a payment is spent in, penalty
interest and late fees, prepayment (shorter term or lower installment), balloon loans,
and the balanced ledger movement. Expected figures are worked out here by hand."""

from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import ledger_pb2
from core_cash.rules import RULES as CASH
from core_mortgage.rules import RULES as MORTGAGE
from core_vehicle.rules import RULES as VEHICLE
from bank.loans.v1 import loans_pb2
from loan_core import engine, ledger, queries
from paymesh import chart_of_accounts as coa
from paymesh.errors import Refused
from loan_core.loan import LoanState, LoanTerms, originate
from paymesh.loan_ids import loan_type_of
from loan_core import money
from loan_core.money import div_half_even

REDUCE_TERM = types_pb2.PREPAYMENT_MODE_REDUCE_TERM
REDUCE_INSTALLMENT = types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT


def cash_terms(**changes) -> LoanTerms:
    """10,000.00 PEN at a TEA of 12 %, 12 months, disbursed 2026-01-10."""
    terms = LoanTerms("CSH-000001", types_pb2.LOAN_TYPE_CASH, "B000000001", "PEN", 1_000_000, 1_200, 12,
                      date(2026, 1, 10), 0, 0, 0)
    return replace(terms, **changes)


def half_even(numerator, denominator=1) -> int:
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def effective(tea_bps: int, days: int) -> Decimal:
    """The rate of `days` days at an effective annual rate, (1 + TEA) ** (days/360) - 1, worked out here
    independently of loan_core.money."""
    return (1 + Decimal(tea_bps) / 10_000) ** (Decimal(days) / 360) - 1


MONTHLY_12 = (Decimal("1.12") ** (Decimal(1) / 12)) - 1  # a TEA of 12 % a month: 0.0094887929...


def test_loan_ids_say_their_product_and_malformed_ids_have_none():
    assert loan_type_of("CSH-000123") == types_pb2.LOAN_TYPE_CASH
    assert loan_type_of("MTG-000001") == types_pb2.LOAN_TYPE_MORTGAGE
    assert loan_type_of("VEH-123456789012") == types_pb2.LOAN_TYPE_VEHICLE
    for bad in ("", "CSH-", "CSH-12345", "csh-000123", "XYZ-000123", "CSH-0001234567890", "CSH-00012a", " CSH-000123"):
        assert loan_type_of(bad) is None, bad


def test_half_even_rounding_goes_to_the_even_cent():
    assert [div_half_even(n, 2) for n in (1, 3, 5, -1)] == [0, 2, 2, 0]
    assert div_half_even(7, 3) == 2 and div_half_even(8, 3) == 3


@pytest.mark.parametrize("disbursed, expected", [
    # A common year: February has 28 days, so the 31st falls on the 28th; every other month keeps its own
    # last day where it has no 31st (April, June), and the 31st where it has one.
    (date(2026, 1, 31), [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31),
                         date(2026, 6, 30), date(2026, 7, 31)]),
    # A leap year: 29 February.
    (date(2024, 1, 31), [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31),
                         date(2024, 6, 30), date(2024, 7, 31)]),
    # The 30th: only February lacks it.
    (date(2026, 1, 30), [date(2026, 2, 28), date(2026, 3, 30), date(2026, 4, 30), date(2026, 5, 30),
                         date(2026, 6, 30), date(2026, 7, 30)]),
])
def test_a_due_day_the_month_lacks_falls_on_its_last_day_one_due_date_a_month(disbursed, expected):
    """Disbursed on 31 January, the due dates came out 03-03, 03-31, 05-01, 05-31: none in February, two in May."""
    installments = originate(cash_terms(disbursement_date=disbursed, term_months=6), CASH).installments
    assert [i.due_date for i in installments] == expected


def test_rates_are_effective_annual_rates_as_disclosed():
    """The month's interest was the nominal rate / 12: 250.00 on 10,000.00 at 30 %."""
    # A TEA of 30 %: a month is 1.30 ** (1/12) - 1 = 0.02210445, so 10,000.00 earns 221.04 in a month;
    # one day is 1.30 ** (1/360) - 1 = 0.00072904, so 10,000.00 earns 7.29 in a day.
    assert money.monthly_interest(1_000_000, 3_000) == 22_104
    assert money.interest_for_days(1_000_000, 3_000, 1) == 729
    # Twelve effective months compound to the TEA itself: 10,000.00 grows to 13,000.00.
    assert half_even(1_000_000 * (1 + money.monthly_rate(3_000)) ** 12) == 1_300_000


def test_french_schedule_has_a_fixed_installment_and_principal_sums_exactly():
    state = originate(cash_terms(), CASH)
    # 10,000.00 at a TEA of 12 %: a month is 1.12 ** (1/12) - 1 = 0.0094887929; over 12 months
    # 10000 * 0.0094887929 / (1 - 1.0094887929 ** -12) = 885.6207 -> 885.62 (a nominal 12 % gave 888.49).
    # The first month's interest: 10000 * 0.0094887929 = 94.8879 -> 94.89, so 885.62 - 94.89 = 790.73 of principal.
    installments = state.installments
    assert len(installments) == 12
    assert all(i.principal + i.interest == 88_562 for i in installments[:-1])
    assert installments[0].interest == 9_489 and installments[0].principal == 79_073
    assert installments[1].interest == half_even((1_000_000 - 79_073) * MONTHLY_12)
    assert sum(i.principal for i in installments) == 1_000_000
    assert [i.due_date for i in installments[:2]] == [date(2026, 2, 10), date(2026, 3, 10)]


WITH_FEE = replace(CASH, late_fee_minor={"PEN": 15_00}, late_fee_tolerance_minor={"PEN": 5_00})


def test_overdue_installments_first_and_penalty_interest_before_interest_and_principal():
    state = originate(cash_terms(), CASH)
    on = date(2026, 3, 20)  # installments 1 and 2 overdue, 3 in course
    first, second = state.installments[0], state.installments[1]
    # Late days earn penalty interest and the loan's own interest, both effective annual rates, on the
    # unpaid principal: principal * ((1 + TEA) ** (days/360) - 1). No late fee (Ley 31143).
    penalty_1 = half_even(first.principal * effective(CASH.penalty_rate_bps, 38))  # 38 days late
    penalty_2 = half_even(second.principal * effective(CASH.penalty_rate_bps, 10))  # 10 days late
    late_interest_1 = half_even(first.principal * effective(1_200, 38))
    first_total = penalty_1 + first.interest + late_interest_1 + first.principal
    paid = first_total + penalty_2 + 500  # all of the first, the second's penalty and 5.00 of its interest

    after, allocation = engine.apply_payment(state, CASH, paid, on, types_pb2.PREPAYMENT_MODE_UNSPECIFIED)

    assert (allocation.fees, allocation.penalty_interest) == (0, penalty_1 + penalty_2)
    assert allocation.interest == first.interest + late_interest_1 + 500
    assert allocation.principal == first.principal and allocation.prepayment == 0
    assert allocation.total == paid
    assert after.installments[0].outstanding == 0
    assert after.installments[1].paid_principal == 0 and after.installments[1].paid_interest == 500
    assert state.installments[0].paid_principal == 0, "the engine never changes the state it is given"


def test_penalty_accrues_only_on_new_overdue_days():
    state = originate(cash_terms(), WITH_FEE)
    after, _ = engine.apply_payment(state, WITH_FEE, 100, date(2026, 2, 20), REDUCE_TERM)  # pays part of the fee
    again = engine.as_of(after, WITH_FEE, date(2026, 2, 20))
    assert again.installments[0].penalty_accrued == after.installments[0].penalty_accrued
    later = engine.as_of(after, WITH_FEE, date(2026, 2, 25))
    extra = half_even(after.installments[0].principal * effective(WITH_FEE.penalty_rate_bps, 5))
    assert later.installments[0].penalty_accrued == after.installments[0].penalty_accrued + extra
    assert later.installments[0].fee_charged == 15_00, "the late fee is charged once"


def test_no_late_fee_by_default_and_a_remainder_within_the_tolerance_brings_none():
    """0.01 left unpaid brought a 15.00 late fee the next day."""
    state = originate(cash_terms(), CASH)
    due = date(2026, 2, 10)  # a Tuesday
    short, _ = engine.apply_payment(state, CASH, state.installments[0].outstanding - 1, due, 0)
    assert engine.as_of(short, CASH, date(2026, 2, 11)).installments[0].fee_charged == 0  # Ley 31143: none
    # A product that does charge one, with a tolerance of 5.00: 0.01 or 5.00 left brings none, 5.01 does.
    for left, fee in ((1, 0), (5_00, 0), (5_01, 15_00)):
        paid, _ = engine.apply_payment(state, WITH_FEE, state.installments[0].outstanding - left, due, 0)
        assert engine.as_of(paid, WITH_FEE, date(2026, 2, 11)).installments[0].fee_charged == fee, left


def test_a_due_date_on_a_sunday_falls_due_the_next_business_day():
    # Disbursed on 2026-04-10: the first installment is due on Sunday 2026-05-10 (and Monday the 11th
    # is a business day in Lima), so paying on the Monday is on time; from the Tuesday it is late.
    state = originate(cash_terms(disbursement_date=date(2026, 4, 10)), CASH)
    first = state.installments[0]
    assert first.due_date == date(2026, 5, 10) and first.due_date.weekday() == 6
    monday = engine.as_of(state, CASH, date(2026, 5, 11)).installments[0]
    assert (monday.penalty_accrued, monday.interest) == (0, first.interest)
    assert not engine.is_late(first, date(2026, 5, 11)) and engine.is_late(first, date(2026, 5, 12))
    tuesday = engine.as_of(state, CASH, date(2026, 5, 12)).installments[0]
    # One day late, counted from the Monday: 10,000.00 of principal... its 790.73 at 12 % for a day.
    assert tuesday.penalty_accrued == half_even(first.principal * effective(CASH.penalty_rate_bps, 1))


def test_a_payoff_one_day_into_a_month_pays_one_days_interest():
    """The payoff charged the whole month's interest of the installment in course: 87.38 for one day."""
    state = originate(cash_terms(installments_paid=1), CASH)
    on = date(2026, 2, 11)  # installment 1 paid on 02-10; one day of installment 2's month has gone by
    # The balance is 10,000.00 - 790.73 = 9,209.27; a day at a TEA of 12 %: 1.12 ** (1/360) - 1 = 0.00031485,
    # 9209.27 * 0.00031485 = 2.8995 -> 2.90. The payoff: 9,209.27 + 2.90 = 9,212.17.
    assert half_even(920_927 * effective(1_200, 1)) == 290
    payoff = engine.payoff_amount(engine.as_of(state, CASH, on), on)
    assert payoff == 921_217
    paid_off, allocation = engine.apply_payment(state, CASH, payoff, on, 0)
    assert paid_off.paid_off and allocation.interest == 290
    assert allocation.principal + allocation.prepayment == 920_927 and allocation.total == payoff


def test_a_mortgage_payoff_one_day_into_a_month_pays_a_days_interest_and_insurance():
    """300,000.00 paid 2,158.81 of interest and 196.37 of insurance for a month one day old."""
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, installments_paid=1, asset_insurance_minor=11_250)
    state = originate(terms, MORTGAGE)
    course = state.installments[1]  # due 2026-03-10: its month is 28 days, one gone by on 02-11
    balance = sum(i.principal for i in state.installments[1:])
    on = date(2026, 2, 11)
    _, allocation = engine.apply_payment(state, MORTGAGE, engine.payoff_amount(engine.as_of(state, MORTGAGE, on), on),
                                         on, 0)
    # Interest: the balance * (1.09 ** (1/360) - 1); insurance: 1/28 of the month's life and property.
    assert allocation.interest == half_even(balance * effective(900, 1))
    assert allocation.life_insurance == half_even(course.life_insurance, 28)
    assert allocation.asset_insurance == half_even(11_250, 28) == 402
    assert allocation.principal + allocation.prepayment == balance


def test_up_to_two_installments_ahead_are_an_adelanto_de_cuotas():
    """Two installments paid on 02-11 prepaid 888.49, installment 3 stayed due on 04-10 and on 04-11
    the loan was overdue."""
    state = originate(cash_terms(installments_paid=1), CASH)
    on = date(2026, 2, 11)
    two = state.installments[1].outstanding + state.installments[2].outstanding  # 885.62 + 885.62
    after, allocation = engine.apply_payment(state, CASH, two, on, 0)
    assert allocation.prepayment == 0 and allocation.total == two
    assert [i.outstanding for i in after.installments[1:3]] == [0, 0]
    assert [(i.principal, i.interest) for i in after.installments] == [
        (i.principal, i.interest) for i in state.installments], "nothing is recomputed"
    april = engine.as_of(after, CASH, date(2026, 4, 11))
    assert not any(engine.is_late(i, date(2026, 4, 11)) for i in april.installments), "03-10 and 04-10 are covered"
    assert engine.is_late(after.installments[3], date(2026, 5, 12))  # installment 4, due 05-10, is not


def test_three_installments_ahead_are_a_prepayment_with_the_customers_mode():
    state = originate(cash_terms(installments_paid=1), CASH)
    on = date(2026, 2, 15)  # installment 2 (due 03-10) in course since 02-10: 5 days
    amount = 4 * 88_562  # the installment in course and three more
    # A pago anticipado: installment 2 takes only its 5 days' interest, 920,927 * (1.12 ** (5/360) - 1)
    # = 14.5069 -> 14.51, and its principal 798.24; the rest, 3,542.48 - 14.51 - 798.24 = 2,729.73, is
    # prepaid, leaving 8,411.03 - 2,729.73 = 5,681.30. Installment 3's interest runs from 02-15 to 04-10,
    # 54 days: 5681.30 * (1.12 ** (54/360) - 1) = 97.397 -> 97.40.
    assert half_even(920_927 * effective(1_200, 5)) == 1_451
    assert half_even(568_130 * effective(1_200, 54)) == 9_740
    results = {}
    for mode in (0, REDUCE_TERM, REDUCE_INSTALLMENT):
        after, allocation = engine.apply_payment(state, CASH, amount, on, mode)
        assert (allocation.interest, allocation.principal, allocation.prepayment) == (1_451, 79_824, 272_973)
        assert after.installments[1].outstanding == 0 and after.installments[2].interest == 9_740
        assert sum(i.principal for i in after.installments) + after.prepaid_minor == 1_000_000
        results[mode] = after
    # Reduce term (also with no mode: the default): 885.62 stays and the loan ends in October, not January.
    term = results[REDUCE_TERM]
    assert [i.principal + i.interest for i in term.installments[2:-1]] == [88_562] * 6
    assert term.installments[-1].due_date == date(2026, 10, 10) and len(term.installments) == 9
    assert results[0].to_json() == term.to_json()
    # Reduce installment: twelve installments still, 5,681.30 over the ten left: 598.20 a month.
    lower = results[REDUCE_INSTALLMENT]
    assert len(lower.installments) == 12 and lower.installments[2].principal + lower.installments[2].interest == 59_820
    assert lower.installments[-1].due_date == date(2027, 1, 10)


def test_a_prepayment_mode_asked_for_makes_even_a_small_excess_a_prepayment():
    state = originate(cash_terms(installments_paid=1), CASH)
    due = state.installments[1].outstanding
    _, adelanto = engine.apply_payment(state, CASH, due + 100_00, date(2026, 2, 15), 0)
    _, asked = engine.apply_payment(state, CASH, due + 100_00, date(2026, 2, 15), REDUCE_TERM)
    assert adelanto.prepayment == 0 and adelanto.principal > 79_824  # 100.00 of installment 3 paid ahead
    assert asked.prepayment == due + 100_00 - 79_824 - 1_451  # the course to date, the rest to principal


def test_amounts_above_the_payoff_are_refused_and_the_payoff_ends_the_loan():
    state = originate(cash_terms(installments_paid=3), CASH)
    on = date(2026, 4, 15)
    payoff = engine.payoff_amount(engine.as_of(state, CASH, on), on)
    with pytest.raises(Refused) as refused:
        engine.apply_payment(state, CASH, payoff + 1, on, REDUCE_TERM)
    assert refused.value.reason == errors_pb2.ERROR_REASON_AMOUNT_INVALID
    paid_off, allocation = engine.apply_payment(state, CASH, payoff, on, REDUCE_TERM)
    assert paid_off.paid_off and paid_off.outstanding_principal == 0 and allocation.total == payoff
    with pytest.raises(Refused) as refused:
        engine.apply_payment(paid_off, CASH, 100, on, REDUCE_TERM)
    assert refused.value.reason == errors_pb2.ERROR_REASON_LOAN_PAID_OFF


def test_a_cash_overpayment_pays_off_and_the_surplus_is_the_customers():
    """An overpayment from a cash channel was refused, though the agent or the store already held the cash."""
    state = originate(cash_terms(installments_paid=1), CASH)
    on = date(2026, 2, 11)
    payoff = engine.payoff_amount(engine.as_of(state, CASH, on), on)  # 9,212.17 (one day's interest)
    with pytest.raises(Refused) as refused:  # a digital channel: nothing is in the bank's hands yet
        engine.apply_payment(state, CASH, payoff + 50_00, on, 0)
    assert refused.value.reason == errors_pb2.ERROR_REASON_AMOUNT_INVALID
    assert "pay 921217 at most" in refused.value.message
    paid_off, allocation = engine.apply_payment(state, CASH, payoff + 50_00, on, 0, surplus_allowed=True)
    assert paid_off.paid_off and allocation.overpayment == 50_00 and allocation.total == payoff + 50_00
    posting = ledger.payment_posting("p", "p", "2026-02-11", types_pb2.CHANNEL_STORE, "PEN", allocation, CASH)
    assert ledger.is_balanced(posting)
    credits = {e.account: e.amount.amount_minor for e in posting.entries[1:]}
    assert credits["210701"] == 50_00 and "210701" in coa.every_account()  # the mainframe takes the account


def test_the_loan_view_discloses_tea_and_tcea():
    cash = queries.loan_message(originate(cash_terms(), CASH), CASH, date(2026, 1, 10))
    assert (cash.annual_rate_bps, cash.tcea_bps) == (1_200, 1_200), "no insurance, no fee: the cost is the rate"
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, asset_insurance_minor=11_250)
    mortgage = queries.loan_message(originate(terms, MORTGAGE), MORTGAGE, date(2026, 1, 10))
    assert mortgage.annual_rate_bps == 900 and mortgage.tcea_bps > 900  # insurance is a cost of the loan
    # The TCEA is the rate at which the installments (insurance included) are worth the 300,000.00 lent:
    # discounted monthly at (1 + TCEA) ** (1/12) - 1 they come back to it, within the basis point's rounding.
    monthly = (1 + Decimal(mortgage.tcea_bps) / 10_000) ** (Decimal(1) / 12) - 1
    worth = sum(Decimal(i.scheduled_total) / (1 + monthly) ** n
                for n, i in enumerate(originate(terms, MORTGAGE).installments, start=1))
    assert abs(worth - 30_000_000) < 30_000_000 * Decimal("0.0005")


@pytest.mark.parametrize("on, days, category", [
    (date(2026, 2, 10), 0, loans_pb2.RISK_CATEGORY_NORMAL),  # due today
    (date(2026, 2, 18), 8, loans_pb2.RISK_CATEGORY_NORMAL),
    (date(2026, 2, 19), 9, loans_pb2.RISK_CATEGORY_POTENTIAL_PROBLEMS),
    (date(2026, 3, 13), 31, loans_pb2.RISK_CATEGORY_SUBSTANDARD),
    (date(2026, 4, 12), 61, loans_pb2.RISK_CATEGORY_DOUBTFUL),
    (date(2026, 6, 10), 120, loans_pb2.RISK_CATEGORY_DOUBTFUL),
    (date(2026, 6, 11), 121, loans_pb2.RISK_CATEGORY_LOSS),
])
def test_the_loan_view_shows_days_past_due_and_the_sbs_category(on, days, category):
    # Installment 1, due Tuesday 2026-02-10, unpaid: consumer loans are Normal to 8 days, CPP to 30,
    # Deficiente to 60, Dudoso to 120, then Pérdida.
    view = queries.loan_message(originate(cash_terms(), CASH), CASH, on)
    assert (view.days_past_due, view.risk_category) == (days, category)


def test_a_mortgage_has_the_mortgage_thresholds():
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, asset_insurance_minor=11_250)
    state = originate(terms, MORTGAGE)
    assert queries.loan_message(state, MORTGAGE, date(2026, 3, 12)).risk_category == loans_pb2.RISK_CATEGORY_NORMAL
    assert (queries.loan_message(state, MORTGAGE, date(2026, 3, 13)).risk_category
            == loans_pb2.RISK_CATEGORY_POTENTIAL_PROBLEMS)  # 31 days: CPP for a mortgage, Deficiente for cash


def test_a_date_centuries_away_is_refused_not_computed():
    """GetLoan as of 9999-12-31 failed inside the core: effective rates compounded past any number."""
    with pytest.raises(Refused) as refused:
        engine.as_of(originate(cash_terms(), CASH), CASH, date(9999, 12, 31))
    assert refused.value.reason == errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE


def test_state_survives_its_json_exactly():
    state = originate(cash_terms(installments_paid=2), CASH)
    after, _ = engine.apply_payment(state, CASH, 150_000, date(2026, 4, 20), REDUCE_INSTALLMENT)
    assert LoanState.from_json(after.terms, after.to_json()) == after


def test_payment_posting_is_balanced_with_stable_entry_ids():
    state = originate(cash_terms(), CASH)
    _, allocation = engine.apply_payment(state, CASH, 100_000, date(2026, 3, 20), REDUCE_TERM)
    posting = ledger.payment_posting("pay-1", "pay-1", "2026-03-20", types_pb2.CHANNEL_ATM, "PEN", allocation, CASH)
    assert ledger.is_balanced(posting)
    assert [e.entry_id for e in posting.entries] == [f"pay-1:{n}" for n in range(1, len(posting.entries) + 1)]
    debit = posting.entries[0]
    assert (debit.account, debit.side, debit.amount.amount_minor) == ("110504", ledger_pb2.ENTRY_SIDE_DEBIT, 100_000)
    credits = {e.account: e.amount.amount_minor for e in posting.entries[1:]}
    assert credits == {"510201": allocation.penalty_interest, "510101": allocation.interest,
                       "140101": allocation.principal}
    reversal = ledger.reversal_posting("rev-1", "2026-03-21", posting)
    assert ledger.is_balanced(reversal) and reversal.payment_id == "pay-1"
    assert [(e.account, e.side) for e in reversal.entries] == [
        (e.account,
         ledger_pb2.ENTRY_SIDE_CREDIT if e.side == ledger_pb2.ENTRY_SIDE_DEBIT else ledger_pb2.ENTRY_SIDE_DEBIT)
        for e in posting.entries
    ]
    assert reversal.entries[0].entry_id == "rev-1:1"


def test_mortgage_installment_carries_life_and_property_insurance():
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, asset_insurance_minor=11_250)
    state = originate(terms, MORTGAGE)
    first = state.installments[0]
    assert first.life_insurance == half_even(30_000_000 * MORTGAGE.life_insurance_ppm, 1_000_000)
    assert first.asset_insurance == 11_250
    on = date(2026, 2, 10)  # the first installment, paid on its due date
    _, allocation = engine.apply_payment(state, MORTGAGE, first.outstanding, on, 0)
    assert allocation.insurance == first.insurance and allocation.principal == first.principal
    posting = ledger.payment_posting("p", "p", "2026-02-10", types_pb2.CHANNEL_APP, "PEN", allocation, MORTGAGE)
    credits = {e.account: e.amount.amount_minor for e in posting.entries[1:]}
    assert credits["210501"] == first.life_insurance and credits["210502"] == 11_250
    assert ledger.is_balanced(posting)


def test_mortgage_refuses_a_payment_smaller_than_the_oldest_installment_due():
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, asset_insurance_minor=11_250)
    state = originate(terms, MORTGAGE)
    on = date(2026, 3, 20)  # installments 1 and 2 overdue
    oldest = engine.as_of(state, MORTGAGE, on).installments[0].outstanding
    with pytest.raises(Refused) as refused:
        engine.apply_payment(state, MORTGAGE, oldest - 1, on, 0)
    assert refused.value.reason == errors_pb2.ERROR_REASON_PARTIAL_PAYMENT_NOT_ALLOWED
    after, allocation = engine.apply_payment(state, MORTGAGE, oldest, on, 0)
    assert after.installments[0].outstanding == 0 and allocation.total == oldest


def test_a_mortgage_takes_any_amount_ahead_and_with_no_mode_a_prepayment_shortens_the_term():
    """The mortgage refused installment + 100.00 (a minimum of one installment no rule sets) and, given no
    mode, lowered the installment; the customer's default is a shorter term (Res. SBS 3274-2017)."""
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, installments_paid=1, asset_insurance_minor=11_250)
    state = originate(terms, MORTGAGE)
    on = date(2026, 2, 15)
    due, installment = state.installments[1].outstanding, state.installments[2].scheduled_total
    _, adelanto = engine.apply_payment(state, MORTGAGE, due + installment + 100_00, on, 0)
    assert adelanto.prepayment == 0 and adelanto.total == due + installment + 100_00  # taken, paid ahead
    after, allocation = engine.apply_payment(state, MORTGAGE, due + 3 * installment, on, 0)
    assert allocation.prepayment > 2 * installment
    regular = state.installments[3].principal + state.installments[3].interest
    assert {i.principal + i.interest for i in after.installments[3:-1]} == {regular}, "the installment stays"
    assert len(after.installments) < 240, "the term shortens"
    payoff = engine.payoff_amount(engine.as_of(state, MORTGAGE, on), on)
    assert engine.apply_payment(state, MORTGAGE, payoff, on, 0)[0].paid_off


def test_cash_takes_partial_payments_of_any_size():
    state = originate(cash_terms(), CASH)
    after, allocation = engine.apply_payment(state, CASH, 1, date(2026, 3, 20), 0)
    assert allocation.penalty_interest == 1 and after.installments[0].paid_penalty == 1


def test_vehicle_balloon_is_paid_with_the_last_installment():
    terms = cash_terms(loan_id="VEH-000001", loan_type=types_pb2.LOAN_TYPE_VEHICLE, principal_minor=8_000_000,
                       annual_rate_bps=1_200, term_months=36, balloon_minor=2_400_000, asset_insurance_minor=29_000)
    state = originate(terms, VEHICLE)
    regular = state.installments[0].principal + state.installments[0].interest
    assert all(i.principal + i.interest == regular for i in state.installments[:-1])
    last = state.installments[-1]
    assert last.principal >= 2_400_000 and last.principal + last.interest > 2 * regular
    assert sum(i.principal for i in state.installments) == 8_000_000
    assert all(i.asset_insurance == 29_000 and i.life_insurance == 0 for i in state.installments)
    without = originate(replace(terms, balloon_minor=0), VEHICLE)
    assert without.installments[0].principal + without.installments[0].interest > regular
