"""What makes one product differ from another: every rule the shared engine asks a
product about, as data. Each core's own module (core_cash/rules.py, ...) fills one in."""

from dataclasses import dataclass, field
from collections.abc import Mapping

from bank.common.v1 import types_pb2
from paymesh.topology import PRODUCT_OF_TYPE


@dataclass(frozen=True)
class PortfolioProfile:
    """How the seeded generator draws this product's loans (amounts in minor units)."""

    usd_share_percent: int  # the rest is PEN
    principal_range: Mapping[str, tuple[int, int]]  # per currency
    rate_bps_range: tuple[int, int]
    terms_months: tuple[int, ...]
    # The insured asset (house or car) is worth this many percent of the principal.
    asset_value_percent: int = 0
    # This share of the loans has a final balloon installment of balloon_percent_range of principal.
    balloon_share_percent: int = 0
    balloon_percent_range: tuple[int, int] = (0, 0)


# eq=False: a product's rules are one object, hashed by identity (caches key on them).
@dataclass(frozen=True, eq=False)
class ProductRules:
    loan_type: types_pb2.LoanType
    # Late fee charged once per installment that falls overdue, per currency; none ({}) by default:
    # Ley 31143 (2021) allows only penalty interest for a delay, so a product that charges one is
    # an exception that must name its ground.
    late_fee_minor: Mapping[str, int]
    # Penalty interest (interés moratorio), an effective annual rate, on the overdue principal.
    penalty_rate_bps: int
    # Life insurance (desgravamen) per month, parts per million of the balance before the installment.
    life_insurance_ppm: int
    # Asset insurance (property or vehicle) per month, parts per million of the asset's value.
    asset_insurance_ppm: int
    # The ledger account (paymesh.chart_of_accounts) the asset insurance is owed to, if any.
    asset_insurance_account: str | None
    # bank.common.v1.PrepaymentMode taken when a payment says UNSPECIFIED.
    default_prepayment_mode: int
    # May a payment be smaller than the oldest installment due (overdue, else in course)?
    partial_payments_allowed: bool
    # A prepayment (the part above everything due) must be at least this many of the
    # next installment's amount, unless it pays the loan off. 0: any prepayment.
    min_prepayment_installments: int
    portfolio: PortfolioProfile
    # An unpaid remainder up to this (per currency) brings no late fee where the product charges one.
    late_fee_tolerance_minor: Mapping[str, int] = field(default_factory=dict)
    # Beyond what is due, this many installments more are an adelanto de cuotas (paid ahead as
    # scheduled); beyond that, a pago anticipado of principal (Res. SBS 3274-2017 as we read it).
    adelanto_installments: int = 2
    # The SBS's debtor categories by days past due (Res. SBS 11356-2008, cap. 2): the most days of
    # Normal, CPP, Deficiente and Dudoso; beyond the last, Pérdida. Consumer loans below.
    risk_category_days: tuple[int, int, int, int] = (8, 30, 60, 120)

    @property
    def service(self) -> str:
        """The core that holds this product (paymesh.topology.PRODUCTS)."""
        return PRODUCT_OF_TYPE[self.loan_type].core
