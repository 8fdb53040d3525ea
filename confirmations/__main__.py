from confirmations.server import main

main()
