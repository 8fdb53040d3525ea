from payment_router.server import main

main()
