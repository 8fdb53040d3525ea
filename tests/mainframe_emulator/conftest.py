"""The mainframe emulator on its own, as the bridge speaks to it.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
