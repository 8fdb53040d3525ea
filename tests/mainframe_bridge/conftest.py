"""The mainframe bridge: records, the end-of-day file, its RPCs, faults on the link.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: bridge_store, pair, processes.
bridge_store and pair run on both of the queue's backends: a SQLite file and a new database of the
session's PostgreSQL server (PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL for the bridge process)."""

import pytest

from mainframe_bridge import queue_store
from paymesh.postgres import PostgresStore
from paymesh.sqlite import Store
from tests.mainframe_bridge.support import (
    start_bridge,
    start_emulator,
)


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str | None:
    """None: the queue's SQLite file; else a new PostgreSQL database of the session's server."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def bridge_env(database_url: str | None) -> dict[str, str]:
    return {"PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL": database_url} if database_url else {}


@pytest.fixture
def pair(tmp_path, pki_dir, database_url):
    emulator = start_emulator(tmp_path, pki_dir)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address, **bridge_env(database_url))
    yield emulator, bridge
    bridge.kill()
    emulator.kill()


@pytest.fixture
def bridge_store(tmp_path, database_url):
    store: Store | PostgresStore = (PostgresStore(database_url, queue_store.POSTGRES_SCHEMA_DIR) if database_url
                                    else Store(tmp_path / "bridge.db", queue_store.SCHEMA))
    yield store
    store.close()
