"""Mortgages (crédito hipotecario): the installment carries life insurance (desgravamen,
on the balance) and property insurance (on the property's value); a payment smaller than
the oldest installment due is refused. A prepayment of any size is taken (no rule of the
SBS sets a minimum) and, when the customer names no mode, shortens the term, as for every
product (Res. SBS 3274-2017: the customer chooses; reduce term if not)."""

from bank.common.v1 import types_pb2
from loan_core.rules import PortfolioProfile, ProductRules
from paymesh.chart_of_accounts import PROPERTY_INSURANCE_PAYABLE

RULES = ProductRules(
    loan_type=types_pb2.LOAN_TYPE_MORTGAGE,
    late_fee_minor={},  # none: Ley 31143 allows only penalty interest for a delay
    penalty_rate_bps=900,
    life_insurance_ppm=280,  # 0.028 % a month of the balance
    asset_insurance_ppm=300,  # 0.030 % a month of the property's value
    asset_insurance_account=PROPERTY_INSURANCE_PAYABLE,
    default_prepayment_mode=types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
    partial_payments_allowed=False,
    min_prepayment_installments=0,
    portfolio=PortfolioProfile(
        usd_share_percent=25,
        principal_range={"PEN": (100_000_00, 600_000_00), "USD": (50_000_00, 200_000_00)},
        rate_bps_range=(700, 1_100),
        terms_months=(120, 180, 240),
        asset_value_percent=125,
    ),
    # Mortgages (créditos hipotecarios para vivienda): Normal up to 30 days, CPP 60, Deficiente 120,
    # Dudoso 365, then Pérdida (Res. SBS 11356-2008).
    risk_category_days=(30, 60, 120, 365),
)
