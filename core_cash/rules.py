"""Cash loans (crédito efectivo): partial payments allowed, either prepayment mode,
no insurance in the installment."""

from bank.common.v1 import types_pb2
from loan_core.rules import PortfolioProfile, ProductRules

RULES = ProductRules(
    loan_type=types_pb2.LOAN_TYPE_CASH,
    late_fee_minor={},  # none: Ley 31143 allows only penalty interest for a delay
    penalty_rate_bps=1_200,
    life_insurance_ppm=0,
    asset_insurance_ppm=0,
    asset_insurance_account=None,
    default_prepayment_mode=types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
    partial_payments_allowed=True,
    min_prepayment_installments=0,
    portfolio=PortfolioProfile(
        usd_share_percent=15,
        principal_range={"PEN": (1_000_00, 50_000_00), "USD": (500_00, 15_000_00)},
        rate_bps_range=(1_800, 4_500),
        terms_months=(6, 12, 18, 24, 36, 48),
    ),
)
