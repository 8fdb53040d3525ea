"""The protos: buf lint clean, the committed stubs current.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
