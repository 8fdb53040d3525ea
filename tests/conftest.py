import contextlib
import dataclasses
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
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


@contextlib.contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A folder for PostgreSQL servers (paymesh_tools.local_postgres), removed afterwards. Under /tmp
    itself, not pytest's tmp folder: as root a server runs as `nobody`, who must reach its own folder."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session, on loopback."""
    with server_folder("paymesh-pg-") as folder, LocalPostgres(folder) as server:
        yield server


@pytest.fixture
def own_postgres_server():
    """A PostgreSQL server of the test's own, which it may stop and start again (an outage)."""
    with server_folder("paymesh-pg-own-") as folder:
        server = LocalPostgres(folder).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new empty database on the session's server, for one test."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def primary_and_standby():
    """A PostgreSQL primary and its synchronous streaming standby on loopback (a commit is
    acknowledged once the standby has it): a database's failover, its standby promoted."""
    with server_folder("paymesh-pg-failover-") as folder:
        primary = LocalPostgres(folder / "primary").start()
        standby = None
        try:
            standby = LocalPostgres(folder / "standby", primary=primary).start()
            with psycopg.connect(primary.url(), autocommit=True) as connection:
                # Synchronous from now on: a commit is acknowledged once the standby has it.
                connection.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                connection.execute("SELECT pg_reload_conf()")
                deadline = time.monotonic() + 20
                while connection.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
                                         ).fetchone() != (1,):
                    assert time.monotonic() < deadline, "the standby never became synchronous"
                    time.sleep(0.1)
            yield primary, standby
        finally:
            if standby is not None:
                standby.stop()
            primary.stop()
