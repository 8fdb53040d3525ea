"""The operator's tooling: paymesh up, the dev PKI, batch upload, reconciliation.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: mesh."""

import pytest

from tests.channel_calls import ENV
from tests.harness import start_mesh, stop_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, pki_dir):
    services = start_mesh(tmp_path_factory.mktemp("mesh"), pki_dir, **ENV)
    yield services
    stop_mesh(services)
