"""Integer money arithmetic with explicit rounding: ROUND_HALF_EVEN (banker's rounding)
everywhere an amount in minor units comes out of a rate. Never a float."""

from decimal import ROUND_HALF_EVEN, Context, Decimal

# Enough digits that (1 + r) ** 480 keeps cent precision on any loan we hold.
DECIMAL = Context(prec=40, rounding=ROUND_HALF_EVEN)


def div_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, in pure integer arithmetic."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def monthly_interest(balance_minor: int, annual_rate_bps: int) -> int:
    """A month's interest at the nominal annual rate / 12."""
    return div_half_even(balance_minor * annual_rate_bps, 10_000 * 12)


def penalty_interest(base_minor: int, annual_rate_bps: int, days: int) -> int:
    """Penalty interest (interés moratorio) on base for days, actual days over a 360-day year."""
    return div_half_even(base_minor * annual_rate_bps * days, 10_000 * 360)


def ppm_of(amount_minor: int, parts_per_million: int) -> int:
    return div_half_even(amount_minor * parts_per_million, 1_000_000)


def annuity_payment(principal_minor: int, annual_rate_bps: int, months: int, balloon_minor: int = 0) -> int:
    """The French installment (principal + interest) that repays principal in `months`
    equal payments, leaving balloon_minor to be paid with the last one."""
    if months <= 0:
        return principal_minor
    rate = DECIMAL.divide(Decimal(annual_rate_bps), Decimal(120_000))
    if rate == 0:
        return div_half_even(principal_minor - balloon_minor, months)
    discount = DECIMAL.power(DECIMAL.add(1, rate), -months)  # v ** n
    present = DECIMAL.subtract(Decimal(principal_minor), DECIMAL.multiply(Decimal(balloon_minor), discount))
    payment = DECIMAL.divide(DECIMAL.multiply(present, rate), DECIMAL.subtract(1, discount))
    return int(payment.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
