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
from loan_core import engine, ledger
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


def test_overdue_installments_first_and_fee_penalty_interest_before_principal():
    state = originate(cash_terms(), CASH)
    on = date(2026, 3, 20)  # installments 1 and 2 overdue, 3 in course
    first, second = state.installments[0], state.installments[1]
    # Penalty at its effective annual rate: principal * ((1 + TEA) ** (days/360) - 1).
    penalty_1 = half_even(first.principal * effective(CASH.penalty_rate_bps, 38))  # 38 days late
    penalty_2 = half_even(second.principal * effective(CASH.penalty_rate_bps, 10))  # 10 days late
    fee = CASH.late_fee_minor["PEN"]
    first_total = fee + penalty_1 + first.interest + first.principal
    paid = first_total + fee + penalty_2 + 500  # all of the first, the second's charges and 5.00 of its interest

    after, allocation = engine.apply_payment(state, CASH, paid, on, types_pb2.PREPAYMENT_MODE_UNSPECIFIED)

    assert (allocation.fees, allocation.penalty_interest) == (2 * fee, penalty_1 + penalty_2)
    assert allocation.interest == first.interest + 500
    assert allocation.principal == first.principal and allocation.prepayment == 0
    assert allocation.total == paid
    assert after.installments[0].outstanding == 0
    assert after.installments[1].paid_principal == 0 and after.installments[1].paid_interest == 500
    assert state.installments[0].paid_principal == 0, "the engine never changes the state it is given"


def test_penalty_accrues_only_on_new_overdue_days():
    state = originate(cash_terms(), CASH)
    after, _ = engine.apply_payment(state, CASH, 100, date(2026, 2, 20), REDUCE_TERM)  # pays part of the fee
    again = engine.as_of(after, CASH, date(2026, 2, 20))
    assert again.installments[0].penalty_accrued == after.installments[0].penalty_accrued
    later = engine.as_of(after, CASH, date(2026, 2, 25))
    extra = half_even(after.installments[0].principal * effective(CASH.penalty_rate_bps, 5))
    assert later.installments[0].penalty_accrued == after.installments[0].penalty_accrued + extra
    assert later.installments[0].fee_charged == CASH.late_fee_minor["PEN"], "the late fee is charged once"


def test_prepayment_reduce_term_keeps_the_installment_and_ends_sooner():
    state = originate(cash_terms(installments_paid=1), CASH)
    on = date(2026, 2, 15)  # installment 2 in course
    due = state.installments[1].outstanding
    after, allocation = engine.apply_payment(state, CASH, due + 300_000, on, REDUCE_TERM)
    assert allocation.prepayment == 300_000
    assert len(after.installments) < 12
    future = after.installments[2:]
    assert all(i.principal + i.interest == 88_562 for i in future[:-1])
    assert future[-1].principal + future[-1].interest <= 88_562
    assert sum(i.principal for i in after.installments) + after.prepaid_minor == 1_000_000


def test_prepayment_reduce_installment_keeps_the_term_and_lowers_the_installment():
    state = originate(cash_terms(installments_paid=1), CASH)
    on = date(2026, 2, 15)
    due = state.installments[1].outstanding
    after, _ = engine.apply_payment(state, CASH, due + 300_000, on, REDUCE_INSTALLMENT)
    assert len(after.installments) == 12
    new_installment = after.installments[2].principal + after.installments[2].interest
    assert new_installment < 88_562
    assert sum(i.principal for i in after.installments) + after.prepaid_minor == 1_000_000


def test_unspecified_prepayment_mode_takes_the_products_default():
    state = originate(cash_terms(installments_paid=1), CASH)
    due = state.installments[1].outstanding
    default, _ = engine.apply_payment(state, CASH, due + 300_000, date(2026, 2, 15), 0)
    explicit, _ = engine.apply_payment(state, CASH, due + 300_000, date(2026, 2, 15), CASH.default_prepayment_mode)
    assert default.to_json() == explicit.to_json()


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
    assert credits == {"510301": allocation.fees, "510201": allocation.penalty_interest,
                       "510101": allocation.interest, "140101": allocation.principal}
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


def test_a_small_mortgage_prepayment_is_taken_and_with_no_mode_shortens_the_term():
    """The mortgage refused installment + 100.00 (a minimum of one installment no rule sets) and, given no
    mode, lowered the installment; the customer's default is a shorter term (Res. SBS 3274-2017)."""
    terms = cash_terms(loan_id="MTG-000001", loan_type=types_pb2.LOAN_TYPE_MORTGAGE, principal_minor=30_000_000,
                       annual_rate_bps=900, term_months=240, installments_paid=1, asset_insurance_minor=11_250)
    state = originate(terms, MORTGAGE)
    on = date(2026, 2, 15)
    due = state.installments[1].outstanding
    after, allocation = engine.apply_payment(state, MORTGAGE, due + 100_00, on, 0)
    assert allocation.prepayment == 100_00
    kept = [i.principal + i.interest for i in after.installments[2:-1]]
    assert set(kept) == {state.installments[2].principal + state.installments[2].interest}, "the installment stays"
    # 100.00 off 240 months is less than the last installment's principal: the term keeps its count, and
    # the last installment is what shrinks (it ends as soon as the unchanged installment allows).
    assert after.installments[-1].principal < state.installments[-1].principal
    assert sum(i.principal for i in after.installments[2:]) == sum(i.principal for i in state.installments[2:]) - 100_00
    payoff = engine.payoff_amount(engine.as_of(state, MORTGAGE, on), on)
    assert engine.apply_payment(state, MORTGAGE, payoff, on, 0)[0].paid_off


def test_cash_takes_partial_payments_of_any_size():
    state = originate(cash_terms(), CASH)
    after, allocation = engine.apply_payment(state, CASH, 1, date(2026, 3, 20), 0)
    assert allocation.fees == 1 and after.installments[0].paid_fee == 1


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
