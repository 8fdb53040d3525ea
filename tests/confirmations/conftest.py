"""Confirmations: publishing, subscriptions, errors, webhooks, the service as a process.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: database_url."""

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str | None:
    """The tests that take it run on both backends: None, the service's SQLite file; else a new
    PostgreSQL database of the session's server (PAYMESH_CONFIRMATIONS_DATABASE_URL)."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
