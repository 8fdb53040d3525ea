"""Resilience on the real mesh: services killed, links cut, the mainframe down.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
