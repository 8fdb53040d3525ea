"""The bridge to the mainframe general ledger, and the mainframe emulator."""
