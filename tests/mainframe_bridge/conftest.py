"""The mainframe bridge: records, the end-of-day file, its RPCs, faults on the link.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: bridge_store, pair, processes."""

import pytest

from mainframe_bridge import queue_store
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


@pytest.fixture
def pair(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address)
    yield emulator, bridge
    bridge.kill()
    emulator.kill()


@pytest.fixture
def bridge_store(tmp_path):
    store = Store(tmp_path / "bridge.db", queue_store.SCHEMA)
    yield store
    store.close()
