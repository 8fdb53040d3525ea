"""Confirmations: publishing, subscriptions, errors, webhooks, the service as a process.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
