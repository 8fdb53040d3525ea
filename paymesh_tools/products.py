"""The three cores' product rules, for the tools that work against their generated portfolios
(simulate-day, the load run, the benches) and for the tests. A core's process has only its own
(`python -m core_cash` runs main(core_cash.rules.RULES)); the engine knows none of them."""

from core_cash.rules import RULES as CASH
from core_mortgage.rules import RULES as MORTGAGE
from core_vehicle.rules import RULES as VEHICLE
from loan_core.rules import ProductRules

RULES_OF_TYPE: dict[int, ProductRules] = {rules.loan_type: rules for rules in (CASH, MORTGAGE, VEHICLE)}
RULES_OF_CORE: dict[str, ProductRules] = {rules.service: rules for rules in (CASH, MORTGAGE, VEHICLE)}
