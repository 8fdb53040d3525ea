from core_vehicle.rules import RULES
from loan_core.server import main

main(RULES)
