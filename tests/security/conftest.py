"""The attack matrix on the real mesh, webhook security, fuzzing.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
