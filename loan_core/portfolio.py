"""A deterministic, seeded portfolio per product, for local runs and tests only: the same
seed, count and as-of date always give the same loans, ids and currencies, so other code
(the router's business-day simulator) can know them without asking a core.

About 15 % of the loans are paid off, 20 % overdue (1 to 3 installments behind), the rest
current. Most are in PEN, some in USD (the product's profile says how many).

A dev setting: PAYMESH_SYNTHETIC_PORTFOLIO=off (production's site.env) seeds nothing, and a core
with no loans stays NOT_SERVING until the loan master file is imported (loan_core/onboarding.py).
"""

import os
import random
from dataclasses import dataclass
from datetime import date

from loan_core.dates import add_months
from loan_core.loan import LoanTerms
from paymesh.loan_ids import make_loan_id
from loan_core.money import ppm_of
from loan_core.rules import ProductRules
from paymesh.business_calendar import bank_calendar

DEFAULT_SIZE = 3000
DEFAULT_SEED = 42


SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


@dataclass(frozen=True)
class PortfolioSettings:
    seed: int
    count: int
    as_of: date
    # Seed an empty store with the generated portfolio (dev); off in production, where loans come
    # only from the origination system's loan master file.
    synthetic: bool = True

    @classmethod
    def from_env(cls) -> "PortfolioSettings":
        """PAYMESH_PORTFOLIO_SIZE (3000), PAYMESH_PORTFOLIO_SEED (42), PAYMESH_PORTFOLIO_AS_OF (today),
        PAYMESH_SYNTHETIC_PORTFOLIO (on; off in production)."""
        as_of = os.environ.get("PAYMESH_PORTFOLIO_AS_OF", "").strip()
        synthetic = os.environ.get("PAYMESH_SYNTHETIC_PORTFOLIO", "").strip().lower() or "on"
        if synthetic not in SWITCH:
            raise ValueError(f"PAYMESH_SYNTHETIC_PORTFOLIO is {synthetic!r}: on or off")
        return cls(
            seed=int(os.environ.get("PAYMESH_PORTFOLIO_SEED", "").strip() or DEFAULT_SEED),
            count=int(os.environ.get("PAYMESH_PORTFOLIO_SIZE", "").strip() or DEFAULT_SIZE),
            as_of=date.fromisoformat(as_of) if as_of else bank_calendar().value_date(),
            synthetic=SWITCH[synthetic],
        )


def customer_ids(count: int) -> list[str]:
    """The customers of a portfolio of count loans a product: 2 × count of them, shared by the three
    products, so that a customer may hold a cash loan, a mortgage and a car loan (the app lists
    them together) and some hold none. What a simulated channel's customers log in as."""
    return [f"B{number:09d}" for number in range(1, 2 * count + 1)]


def _borrower(seed: int, count: int, loan_type: int, number: int, _draw: int) -> str:
    """The borrower of a loan: one of customer_ids(count). Its own random stream: the draw the loan's
    stream makes for it is kept (_draw), so every other field of the seeded portfolio stays what it was."""
    return f"B{random.Random(f'{seed}:borrower:{loan_type}:{number}').randrange(1, 2 * count + 1):09d}"


def generate(rules: ProductRules, *, seed: int, count: int, as_of: date) -> list[LoanTerms]:
    """count loans of the product as they stand on as_of; ids <PREFIX>-000001 upwards."""
    loan_type, profile = rules.loan_type, rules.portfolio
    rng = random.Random(f"{seed}:{loan_type}")
    loans = []
    for number in range(1, count + 1):
        currency = "USD" if rng.randrange(100) < profile.usd_share_percent else "PEN"
        low, high = profile.principal_range[currency]
        principal = rng.randrange(low // 100_00, high // 100_00 + 1) * 100_00  # whole hundreds
        term = rng.choice(profile.terms_months)
        kind = rng.randrange(100)
        if kind < 15:  # paid off
            months_ago = term + rng.randint(1, 6)
        elif kind < 35:  # overdue
            months_ago = rng.randint(2, term)
        else:  # current
            months_ago = rng.randint(1, term - 1)
        day = rng.randint(1, 28)
        disbursed = add_months(as_of.replace(day=day), -months_ago)
        # Installment n falls due add_months(disbursed, n): before as_of for n < months_ago,
        # and for n == months_ago when its day is earlier in the month.
        installments_due = max(0, min(term, months_ago - 1 + (day < as_of.day)))
        paid = installments_due - (rng.randint(1, 3) if 15 <= kind < 35 else 0)
        balloon = 0
        if rng.randrange(100) < profile.balloon_share_percent:
            balloon = principal * rng.randint(*profile.balloon_percent_range) // 100
        asset_value = principal * profile.asset_value_percent // 100
        loans.append(LoanTerms(
            loan_id=make_loan_id(loan_type, number),
            loan_type=loan_type,
            borrower_id=_borrower(seed, count, loan_type, number, rng.randrange(10**9)),
            currency_code=currency,
            principal_minor=principal,
            annual_rate_bps=rng.randrange(profile.rate_bps_range[0], profile.rate_bps_range[1] + 1, 5),
            term_months=term,
            disbursement_date=disbursed,
            balloon_minor=balloon,
            asset_insurance_minor=ppm_of(asset_value, rules.asset_insurance_ppm),
            installments_paid=max(paid, 0),
        ))
    return loans


def amount_due(terms: LoanTerms, rules: ProductRules, on: date) -> int:
    """What a channel shows the customer of a generated loan on `on`: the oldest installment due,
    with its late fee and penalty interest; 0 when none is due. (The loan as generated: one paid
    since at its core owes less there.)"""
    from loan_core import engine  # the engine imports this module (LoanTerms)
    from loan_core.loan import originate
    due, _ = engine.due_installments(engine.as_of(originate(terms, rules), rules, on), on)
    return due[0].outstanding if due else 0
