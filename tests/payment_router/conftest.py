"""The payment router: channels' calls end to end, its journal through crashes, tokens, the business day.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: issuer, mesh."""

import shutil

import pytest

from payment_router.journal import Journal, open_store
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


@pytest.fixture(params=["sqlite", "postgres"])
async def journal(request, tmp_path):
    """A router journal on each backend (payment_router.journal.open_store): the same tests on both."""
    environ = {}
    if request.param == "postgres":
        environ["PAYMESH_PAYMENT_ROUTER_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    opened = Journal(open_store(tmp_path, environ))
    yield opened
    await opened.close()
