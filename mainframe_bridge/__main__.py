from mainframe_bridge.server import main

main()
