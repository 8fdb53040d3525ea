"""Vehicle loans (crédito vehicular): the installment carries vehicle insurance (on the
car's value); some loans end with a balloon installment; partial payments allowed."""

from bank.common.v1 import types_pb2
from loan_core.rules import PortfolioProfile, ProductRules
from paymesh.chart_of_accounts import VEHICLE_INSURANCE_PAYABLE

RULES = ProductRules(
    loan_type=types_pb2.LOAN_TYPE_VEHICLE,
    late_fee_minor={},  # none: Ley 31143 allows only penalty interest for a delay
    penalty_rate_bps=1_000,
    life_insurance_ppm=0,
    asset_insurance_ppm=2_900,  # about 3.5 % a year of the car's value
    asset_insurance_account=VEHICLE_INSURANCE_PAYABLE,
    default_prepayment_mode=types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
    partial_payments_allowed=True,
    min_prepayment_installments=0,
    portfolio=PortfolioProfile(
        usd_share_percent=20,
        principal_range={"PEN": (30_000_00, 150_000_00), "USD": (10_000_00, 50_000_00)},
        rate_bps_range=(900, 1_600),
        terms_months=(24, 36, 48, 60),
        asset_value_percent=125,
        balloon_share_percent=30,
        balloon_percent_range=(20, 35),
    ),
)
