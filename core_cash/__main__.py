from loan_core.server import main

main("core-cash")
