"""The PostgreSQL store (paymesh.postgres) on a real server: the same store functions as on SQLite,
numbered migrations applied once under an advisory lock, and clear refusals at start."""

import socket
import threading
from pathlib import Path

import pytest

from paymesh.postgres import (DatabaseUnavailable, PostgresStore, connect, database_url, migrate, redacted,
                              to_psycopg)
from paymesh.sqlite import Store

SQLITE_SCHEMA = "CREATE TABLE IF NOT EXISTS item (id TEXT PRIMARY KEY, amount_minor INTEGER NOT NULL, body BLOB);"


@pytest.fixture
def schema_dir(tmp_path) -> Path:
    folder = tmp_path / "schema"
    folder.mkdir()
    # No IF NOT EXISTS: applied twice, it fails.
    (folder / "0001_items.sql").write_text(
        "CREATE TABLE item (id TEXT PRIMARY KEY, amount_minor BIGINT NOT NULL, body BYTEA);")
    return folder


def put(connection, items: list[tuple[str, int, bytes]]) -> int:
    connection.executemany("INSERT INTO item (id, amount_minor, body) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                           items)
    return connection.execute("SELECT count(*) FROM item").fetchone()[0]


def put_then_fail(connection, items) -> None:
    put(connection, items)
    raise RuntimeError("after the insert")


def listing(connection) -> list[tuple]:
    return [tuple(row) for row in connection.execute("SELECT id, amount_minor, body FROM item ORDER BY id")]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, schema_dir):
    """The same store functions on each backend."""
    if request.param == "sqlite":
        opened = Store(tmp_path / "items.db", SQLITE_SCHEMA)
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_url"), schema_dir, name="items")
    yield opened
    opened.close()


async def test_a_read_goes_beside_the_stores_work_and_writes_nothing_on_both_backends(store):
    """Store.read (the metrics' samples): its own read-only connection and thread, so it neither waits
    for a transaction in progress nor sees it."""
    import asyncio
    import time

    await store.transaction(put, [("a", 1, b"")])

    def slow_write(connection):
        put(connection, [("b", 2, b"")])
        time.sleep(1.0)

    writing = asyncio.ensure_future(store.transaction(slow_write))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    during = await store.read(lambda c: c.execute("SELECT count(*) FROM item").fetchone()[0])
    waited = time.perf_counter() - started
    await writing
    after = await store.read(lambda c: c.execute("SELECT count(*) FROM item").fetchone()[0])
    with pytest.raises(Exception, match="(?i)read-?only"):
        await store.read(put, [("c", 3, b"")])
    assert (during, after) == (1, 2)
    assert waited < 0.5, f"the read waited {waited:.2f} s for the write"


async def test_the_same_store_functions_on_both_backends(store):
    assert await store.transaction(put, [("a", 100, b"\x00\xff"), ("b", 2**40, b"")]) == 2
    assert await store.transaction(put, [("a", 999, b"again")]) == 2  # ON CONFLICT DO NOTHING on both
    with pytest.raises(RuntimeError):
        await store.transaction(put_then_fail, [("c", 1, b"")])
    assert await store.run(listing) == [("a", 100, b"\x00\xff"), ("b", 2**40, b"")]  # c rolled back


def test_placeholders_become_psycopg_ones_outside_quoted_text():
    assert to_psycopg("SELECT * FROM t WHERE a = ? AND b LIKE 'x?%' AND c = ?") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x?%%' AND c = %s")


def test_migrations_run_once_when_replicas_start_together(postgres_url, schema_dir):
    (schema_dir / "0002_amount_index.sql").write_text("CREATE INDEX item_by_amount ON item (amount_minor);")
    versions, errors = [], []

    def start_one():
        try:
            connection = connect(postgres_url)
            versions.append(migrate(connection, schema_dir))
            connection.close()
        except Exception as error:  # noqa: BLE001 - the test reports whatever a replica hit
            errors.append(error)

    replicas = [threading.Thread(target=start_one) for _ in range(4)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join()
    assert errors == [] and versions == [2, 2, 2, 2]
    connection = connect(postgres_url)
    applied = connection.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert applied == [(1, "0001_items.sql"), (2, "0002_amount_index.sql")]


def test_a_schema_newer_than_the_release_is_refused(postgres_url, schema_dir, tmp_path):
    later = tmp_path / "later"
    later.mkdir()
    (later / "0001_items.sql").write_text((schema_dir / "0001_items.sql").read_text())
    (later / "0002_more.sql").write_text("ALTER TABLE item ADD COLUMN note TEXT;")
    PostgresStore(postgres_url, later).close()
    with pytest.raises(DatabaseUnavailable, match="schema is at version 2, newer than this release knows"):
        PostgresStore(postgres_url, schema_dir)


def test_a_wrong_password_is_a_clear_refusal_that_never_shows_the_password(postgres_server, schema_dir):
    url = postgres_server.url(password="not-the-password")
    with pytest.raises(DatabaseUnavailable, match="password authentication failed") as refused:
        PostgresStore(url, schema_dir)
    assert "not-the-password" not in str(refused.value) and ":***@" in str(refused.value)


def test_an_unreachable_server_is_a_clear_refusal(schema_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the with ends: nothing listens there
    with pytest.raises(DatabaseUnavailable, match="cannot open PostgreSQL database"):
        PostgresStore(f"postgresql://paymesh:secret@127.0.0.1:{port}/core_cash", schema_dir)


def test_the_url_is_the_service_s_own_else_the_mesh_s():
    both = {"PAYMESH_CORE_CASH_DATABASE_URL": "postgresql://a/core_cash", "PAYMESH_DATABASE_URL": "postgresql://b/x"}
    assert database_url("PAYMESH_CORE_CASH", both) == "postgresql://a/core_cash"
    assert database_url("PAYMESH_MAINFRAME_BRIDGE", both) == "postgresql://b/x"
    assert database_url("PAYMESH_CORE_CASH", {}) is None
    assert redacted("postgresql://svc:s3cret@db:5432/core") == "postgresql://svc:***@db:5432/core"


def test_a_day_partition_is_made_once_and_dropped_giving_its_space_back(postgres_url):
    """ensure_day_partitions makes a day's partition where missing (two connections at once: one
    table); drop_day_partition gives the day's space back, keeps the rows asked for, and leaves the
    other days alone."""
    from paymesh.postgres import bytes_in_use, day_partition, drop_day_partition, ensure_day_partitions

    first, second = connect(postgres_url), connect(postgres_url)
    first.execute("CREATE TABLE entry (business_date TEXT NOT NULL, id BIGINT NOT NULL, kept BOOLEAN NOT NULL,"
                  " body BYTEA NOT NULL, PRIMARY KEY (business_date, id)) PARTITION BY LIST (business_date)")
    made: list[list[str]] = []
    failed: list[Exception] = []

    def ensure(connection) -> None:
        try:
            connection.execute("BEGIN")
            made.append(ensure_day_partitions(connection, "entry", ["2026-12-02", "2026-12-03", "2026-12-02"]))
            connection.execute("COMMIT")
        except Exception as error:  # (a thread's exception would not fail the test by itself)
            failed.append(error)

    threads = [threading.Thread(target=ensure, args=(c,)) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed
    assert sorted(sum(made, [])) == ["2026-12-02", "2026-12-03"]  # each day made once, by one of them
    assert ensure_day_partitions(first, "entry", ["2026-12-03"]) == []
    body = b"x" * 2000
    for day in ("2026-12-02", "2026-12-03"):
        first.raw.cursor().executemany("INSERT INTO entry VALUES (%s, %s, %s, %s)",
                                       [(day, n, n % 100 == 0, body) for n in range(2000)])
    before = bytes_in_use(first)

    first.execute("BEGIN")
    drop_day_partition(first, "entry", "2026-12-02", keep_where="kept = ?", parameters=(True,))
    first.execute("COMMIT")

    assert bytes_in_use(first) < before * 0.6
    counts = dict(first.execute("SELECT business_date, count(*) FROM entry GROUP BY 1").fetchall())
    assert counts == {"2026-12-02": 20, "2026-12-03": 2000}
    drop_day_partition(first, "entry", "2026-12-03")
    assert first.execute("SELECT to_regclass(?)", (day_partition("entry", "2026-12-03"),)).fetchone()[0] is None
    drop_day_partition(first, "entry", "2026-12-03")  # again: nothing to drop
    with pytest.raises(ValueError):
        day_partition("entry", "2026-12-03'; DROP TABLE entry; --")
    first.close()
    second.close()


def test_a_cached_day_partition_is_looked_for_again_once_a_transaction_fails(postgres_url):
    """ensure_day_partitions_cached asks the catalog once per day and connection, yet never leaves a
    write without its partition: a failed transaction (which took the partition it made with it) and
    a partition another connection dropped each cost one failed write at most, never a stuck store."""
    import psycopg

    from paymesh.postgres import drop_day_partition, ensure_day_partitions_cached, in_transaction

    connection, other = connect(postgres_url), connect(postgres_url)
    connection.execute("CREATE TABLE entry (business_date TEXT NOT NULL, id BIGINT NOT NULL)"
                       " PARTITION BY LIST (business_date)")

    def write(c, fail: bool = False) -> None:
        ensure_day_partitions_cached(c, "entry", ["2026-12-02"])
        c.execute("INSERT INTO entry VALUES ('2026-12-02', 1)")
        if fail:
            raise RuntimeError("the transaction fails after its partition was made")

    with pytest.raises(RuntimeError):
        in_transaction(connection, write, True)
    in_transaction(connection, write)  # the partition made again, not taken from the cache
    assert connection.known_day_partitions == {("entry", "2026-12-02")}
    in_transaction(other, drop_day_partition, "entry", "2026-12-02")
    with pytest.raises(psycopg.errors.CheckViolation):
        in_transaction(connection, write)  # cached, but dropped by the other: this write fails ...
    in_transaction(connection, write)  # ... and the next makes the partition again
    assert connection.execute("SELECT count(*) FROM entry").fetchone()[0] == 1
    connection.close()
    other.close()
