from core_cash.rules import RULES
from loan_core.server import main

main(RULES)
