"""The seeded portfolio: deterministic, importable without a network call, realistic mix."""

from collections import Counter
from datetime import date

import pytest

from bank.common.v1 import types_pb2
from loan_core import engine
from loan_core.loan import originate
from paymesh.loan_ids import loan_type_of
from loan_core.portfolio import PortfolioSettings, generate
from paymesh_tools.products import RULES_OF_TYPE
from paymesh.business_calendar import BusinessCalendar

AS_OF = date(2026, 11, 27)


@pytest.mark.parametrize("loan_type", sorted(RULES_OF_TYPE))
def test_same_seed_same_loans_and_ids_carry_the_product(loan_type):
    first = generate(RULES_OF_TYPE[loan_type], seed=42, count=400, as_of=AS_OF)
    assert first == generate(RULES_OF_TYPE[loan_type], seed=42, count=400, as_of=AS_OF)
    assert first != generate(RULES_OF_TYPE[loan_type], seed=43, count=400, as_of=AS_OF)
    assert len({t.loan_id for t in first}) == 400
    assert all(loan_type_of(t.loan_id) == loan_type for t in first)
    assert all(t.disbursement_date < AS_OF and 1 <= t.disbursement_date.day <= 28 for t in first)


@pytest.mark.parametrize("loan_type", sorted(RULES_OF_TYPE))
def test_portfolio_mixes_currencies_and_current_overdue_and_paid_off_loans(loan_type):
    rules = RULES_OF_TYPE[loan_type]
    terms = generate(RULES_OF_TYPE[loan_type], seed=42, count=400, as_of=AS_OF)
    currencies = Counter(t.currency_code for t in terms)
    assert set(currencies) == {"PEN", "USD"} and currencies["PEN"] > currencies["USD"]
    statuses = Counter()
    for t in terms:
        view = engine.as_of(originate(t, rules), rules, AS_OF)
        overdue = any(i.due < AS_OF.toordinal() and i.outstanding for i in view.installments)
        statuses["paid off" if view.paid_off else "overdue" if overdue else "current"] += 1
    assert all(statuses[s] >= 30 for s in ("paid off", "overdue", "current")), statuses
    if loan_type == types_pb2.LOAN_TYPE_VEHICLE:
        assert 50 < sum(1 for t in terms if t.balloon_minor) < 200
    else:
        assert not any(t.balloon_minor for t in terms)
    insured = sum(1 for t in terms if t.asset_insurance_minor)
    assert insured == (0 if loan_type == types_pb2.LOAN_TYPE_CASH else 400)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYMESH_PORTFOLIO_SIZE", "25")
    monkeypatch.setenv("PAYMESH_PORTFOLIO_SEED", "7")
    monkeypatch.setenv("PAYMESH_PORTFOLIO_AS_OF", "2026-03-01")
    assert PortfolioSettings.from_env() == PortfolioSettings(7, 25, date(2026, 3, 1))
    monkeypatch.delenv("PAYMESH_PORTFOLIO_SIZE")
    monkeypatch.delenv("PAYMESH_PORTFOLIO_SEED")
    monkeypatch.delenv("PAYMESH_PORTFOLIO_AS_OF")
    assert PortfolioSettings.from_env() == PortfolioSettings(
        42, 3000, BusinessCalendar.from_env().value_date())  # Lima's today
