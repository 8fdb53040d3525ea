"""The shared SQLite store: transactions commit or leave nothing behind."""

import sqlite3

import pytest

from paymesh.sqlite import IDS_PER_QUERY, Store, rows_with_ids

SCHEMA = "CREATE TABLE IF NOT EXISTS movement (id TEXT PRIMARY KEY, amount_minor INTEGER NOT NULL);"


def _insert(connection, rows):
    connection.executemany("INSERT INTO movement VALUES (?, ?)", rows)


async def test_a_transaction_is_all_or_nothing(tmp_path):
    store = Store(tmp_path / "s.db", SCHEMA)
    await store.transaction(_insert, [("a", 100), ("b", 200)])
    with pytest.raises(sqlite3.IntegrityError):
        await store.transaction(_insert, [("c", 300), ("a", 999)])
    rows = await store.run(lambda c: c.execute("SELECT id, amount_minor FROM movement ORDER BY id").fetchall())
    store.close()
    assert rows == [("a", 100), ("b", 200)]
    reopened = Store(tmp_path / "s.db", SCHEMA)
    assert await reopened.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert await reopened.run(lambda c: c.execute("SELECT count(*) FROM movement").fetchone()[0]) == 2
    reopened.close()


async def test_a_lookup_by_more_ids_than_one_query_takes_finds_every_row(tmp_path):
    store = Store(tmp_path / "s.db", SCHEMA)
    stored = [(f"m{n}", n) for n in range(2 * IDS_PER_QUERY + 7)]
    await store.transaction(_insert, stored)
    asked = [f"m{n}" for n in range(0, len(stored), 2)] + ["not-there"]
    found = await store.run(lambda c: dict(rows_with_ids(c, "SELECT id, amount_minor FROM movement WHERE id IN ({})",
                                                         asked)))
    store.close()
    assert found == {f"m{n}": n for n in range(0, len(stored), 2)}


async def test_a_read_neither_waits_for_a_commit_in_progress_nor_sees_it(tmp_path):
    import asyncio
    import time

    store = Store(tmp_path / "s.db", SCHEMA)
    await store.transaction(_insert, [("a", 100)])

    def slow_write(connection):
        _insert(connection, [("b", 200)])
        time.sleep(1.0)  # a long commit on the store's thread: what an online payment's would wait behind

    writing = asyncio.ensure_future(store.transaction(slow_write))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    during = await store.read(lambda c: c.execute("SELECT count(*) FROM movement").fetchone()[0])
    waited = time.perf_counter() - started
    await writing
    after = await store.read(lambda c: c.execute("SELECT count(*) FROM movement").fetchone()[0])
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store.read(_insert, [("c", 300)])
    store.close()
    assert (during, after) == (1, 2)
    assert waited < 0.5, f"the read waited {waited:.2f} s for the write"
