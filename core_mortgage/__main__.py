from core_mortgage.rules import RULES
from loan_core.server import main

main(RULES)
