"""The Locust load run, briefly.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
