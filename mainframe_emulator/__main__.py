from mainframe_emulator.server import main

main()
