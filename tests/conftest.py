import dataclasses
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from paymesh.config import Settings
from paymesh_tools.dev_pki import ensure_dev_pki
from paymesh_tools.local_postgres import LocalPostgres


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory) -> Path:
    """The dev PKI, generated once per test session by the project's own command code."""
    path = tmp_path_factory.mktemp("pki")
    ensure_dev_pki(path)
    return path


@pytest.fixture
def settings(tmp_path, pki_dir) -> Settings:
    return dataclasses.replace(
        Settings.from_env(), home=tmp_path, pki_dir=pki_dir, data_dir=tmp_path / "data", grace_seconds=2.0
    )


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (paymesh_tools.local_postgres), on loopback. Its
    folder is under /tmp itself, not pytest's tmp folder: as root the server runs as `nobody`,
    who cannot enter pytest's private folder."""
    folder = Path(tempfile.mkdtemp(prefix="paymesh-pg-"))
    with LocalPostgres(folder) as server:
        yield server
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new empty database on the session's server, for one test."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:16]}")
