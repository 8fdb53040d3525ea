"""The payment router: channels' calls end to end, its journal through crashes, tokens, the business day.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: issuer, mesh."""

import shutil

import pytest

from tests.channel_calls import ENV
from tests.harness import start_mesh, stop_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, pki_dir):
    services = start_mesh(tmp_path_factory.mktemp("mesh"), pki_dir, **ENV)
    yield services
    stop_mesh(services)


@pytest.fixture
def issuer(tmp_path, pki_dir):
    """A dev token issuer of this test's own (a copy of the session's), so rotating it harms no one."""
    shutil.copytree(pki_dir / "jwt", tmp_path / "jwt")
    return tmp_path
