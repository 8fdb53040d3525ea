"""Integer money arithmetic with explicit rounding: ROUND_HALF_EVEN (banker's rounding)
everywhere an amount in minor units comes out of a rate. Never a float.

Rates are effective annual rates (TEA, tasa efectiva anual), as Peruvian banks disclose
them (Res. SBS 8181-2012): a month's rate is (1 + TEA) ** (1/12) - 1, and d days' rate
is (1 + TEA) ** (d/360) - 1 (a 360-day year, as the SBS's disclosure formulas count).
The rates are exact decimals to 40 digits; only the amount is rounded, once.
"""

import functools
from decimal import ROUND_HALF_EVEN, Context, Decimal

# Enough digits that (1 + r) ** 480 keeps cent precision on any loan we hold.
DECIMAL = Context(prec=40, rounding=ROUND_HALF_EVEN)
_BPS = Decimal(10_000)


def div_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, in pure integer arithmetic."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _half_even(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@functools.lru_cache(maxsize=4096)
def _daily_growth(annual_rate_bps: int) -> Decimal:
    """(1 + TEA) ** (1/360): one day's growth, to 40 digits."""
    growth = DECIMAL.add(1, DECIMAL.divide(Decimal(annual_rate_bps), _BPS))
    return DECIMAL.power(growth, DECIMAL.divide(Decimal(1), Decimal(360)))


@functools.lru_cache(maxsize=16384)
def rate_for_days(annual_rate_bps: int, days: int) -> Decimal:
    """The effective rate of `days` days at the effective annual rate: (1 + TEA) ** (days/360) - 1,
    as one day's growth to the integer power `days` (exact to far more digits than a cent needs,
    and much cheaper than a fractional power)."""
    return DECIMAL.subtract(DECIMAL.power(_daily_growth(annual_rate_bps), days), 1)


@functools.lru_cache(maxsize=1024)
def monthly_rate(annual_rate_bps: int) -> Decimal:
    """The effective monthly rate of the effective annual rate: (1 + TEA) ** (1/12) - 1."""
    growth = DECIMAL.add(1, DECIMAL.divide(Decimal(annual_rate_bps), _BPS))
    return DECIMAL.subtract(DECIMAL.power(growth, DECIMAL.divide(Decimal(1), Decimal(12))), 1)


def monthly_interest(balance_minor: int, annual_rate_bps: int) -> int:
    """A month's interest on balance at the effective annual rate."""
    return _half_even(DECIMAL.multiply(Decimal(balance_minor), monthly_rate(annual_rate_bps)))


def interest_for_days(balance_minor: int, annual_rate_bps: int, days: int) -> int:
    """Interest on balance for `days` days at the effective annual rate (compensatory or penalty)."""
    if days <= 0 or balance_minor <= 0:
        return 0
    return _half_even(DECIMAL.multiply(Decimal(balance_minor), rate_for_days(annual_rate_bps, days)))


def penalty_interest(base_minor: int, annual_rate_bps: int, days: int) -> int:
    """Penalty interest (interés moratorio) on the overdue base for days late, at its effective annual rate."""
    return interest_for_days(base_minor, annual_rate_bps, days)


def ppm_of(amount_minor: int, parts_per_million: int) -> int:
    return div_half_even(amount_minor * parts_per_million, 1_000_000)


def annuity_payment(principal_minor: int, annual_rate_bps: int, months: int, balloon_minor: int = 0) -> int:
    """The French installment (principal + interest) that repays principal in `months`
    equal payments at the monthly effective rate, leaving balloon_minor to be paid with the last one."""
    if months <= 0:
        return principal_minor
    rate = monthly_rate(annual_rate_bps)
    if rate == 0:
        return div_half_even(principal_minor - balloon_minor, months)
    discount = DECIMAL.power(DECIMAL.add(1, rate), -months)  # v ** n
    present = DECIMAL.subtract(Decimal(principal_minor), DECIMAL.multiply(Decimal(balloon_minor), discount))
    return _half_even(DECIMAL.divide(DECIMAL.multiply(present, rate), DECIMAL.subtract(1, discount)))


def effective_annual_cost_bps(principal_minor: int, monthly_flows: list[int]) -> int:
    """The total effective annual cost (TCEA) of a loan of principal repaid by monthly_flows (what the
    customer pays in each month, insurance included): the monthly rate r at which the flows are worth
    the principal, (1 + r) ** 12 - 1 in basis points. Newton's method on exact decimals (28 digits:
    the answer is rounded to a basis point), the worth and its slope by Horner's rule."""
    context = Context(prec=28, rounding=ROUND_HALF_EVEN)
    principal = Decimal(principal_minor)
    flows = [Decimal(flow) for flow in reversed(monthly_flows)]  # the last month first, for Horner
    months = len(flows)
    rate = Decimal("0.01")
    for _ in range(30):  # from 1 % a month, a few steps: the cost of a loan is some 0.5 % to 4 % a month
        v = context.divide(1, context.add(1, rate))
        # worth(v) = sum(flow_k v**k) = v (f1 + v (f2 + ...)); d worth / dv = sum(k flow_k v**(k-1)).
        worth, slope_v = Decimal(0), Decimal(0)
        for position, flow in enumerate(flows):
            slope_v = context.add(context.multiply(slope_v, v), context.multiply(months - position, flow))
            worth = context.add(context.multiply(worth, v), flow)
        worth = context.multiply(worth, v)
        # d worth / d rate = d worth / dv * dv / d rate = slope_v * -(v ** 2)
        slope = context.minus(context.multiply(slope_v, context.multiply(v, v)))
        step = context.divide(context.subtract(worth, principal), slope)
        rate = context.subtract(rate, step)
        if abs(step) < Decimal("1e-12"):  # far finer than the basis point it is rounded to
            break
    annual = context.subtract(context.power(context.add(1, rate), 12), 1)
    return _half_even(context.multiply(annual, _BPS))
