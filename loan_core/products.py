"""The three products' rules, by loan type and by core service name."""

from core_cash.rules import RULES as CASH
from core_mortgage.rules import RULES as MORTGAGE
from core_vehicle.rules import RULES as VEHICLE
from loan_core.rules import ProductRules

BY_LOAN_TYPE: dict[int, ProductRules] = {rules.loan_type: rules for rules in (CASH, MORTGAGE, VEHICLE)}
BY_SERVICE: dict[str, ProductRules] = {rules.service: rules for rules in (CASH, MORTGAGE, VEHICLE)}
