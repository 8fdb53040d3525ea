"""SQLite stores for the services: one file per service, WAL, fully synchronous
commits, and every statement on one dedicated thread so the event loop never blocks.

Durability rule of the mesh: commit, then acknowledge. Group commits (many items,
one transaction) are how a service stays fast while keeping that rule.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the pragmas every store uses; autocommit off (explicit transactions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives a power cut, not just a killed process.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class Store:
    """A SQLite file used from asyncio: `await store.run(fn, ...)` calls fn(connection, ...)
    on the store's own thread, one call at a time."""

    def __init__(self, path: Path, schema: str = "", added_columns: dict[str, dict[str, str]] | None = None,
                 indexes: str = ""):
        """schema makes a new file; added_columns ({table: {column: declaration}}) are added to a file
        made by an earlier version, then indexes (which may use them) are made."""
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")
        self.connection = self._executor.submit(connect, path).result()
        self._reader: sqlite3.Connection | None = None  # read(): made on first use
        self._reader_executor: ThreadPoolExecutor | None = None
        if schema:
            self._executor.submit(self.connection.executescript, schema).result()
        if added_columns:
            self._executor.submit(add_missing_columns, self.connection, added_columns).result()
        if indexes:
            self._executor.submit(self.connection.executescript, indexes).result()

    async def run(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self.connection, *args)

    async def read(self, fn: Callable[..., T], *args) -> T:
        """fn(connection, ...) on a read-only connection and a thread of their own, for reads that must
        neither wait behind the store's commits nor hold them up (the metrics' samples): WAL lets a
        reader see the last commit while the writer goes on; SQLite lets go of the GIL as it reads."""
        if self._reader is None:
            self._reader_executor = ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix=f"sqlite-read-{self.path.stem}")
            self._reader = self._reader_executor.submit(_read_only, self.path).result()
        return await asyncio.get_running_loop().run_in_executor(self._reader_executor, fn, self._reader, *args)

    async def transaction(self, fn: Callable[..., T], *args) -> T:
        """fn(connection, ...) inside BEGIN IMMEDIATE ... COMMIT; rolled back if it raises."""
        return await self.run(_in_transaction, fn, *args)

    def close(self) -> None:
        if self._reader is not None and self._reader_executor is not None:
            self._reader_executor.submit(self._reader.close).result()
            self._reader_executor.shutdown()
            self._reader = None
        self._executor.submit(self.connection.close).result()
        self._executor.shutdown()


def _read_only(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def add_missing_columns(connection: sqlite3.Connection, added_columns: dict[str, dict[str, str]]) -> None:
    """ALTER TABLE ... ADD COLUMN for each column a store made by an earlier version lacks."""
    for table, columns in added_columns.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for column, declaration in columns.items():
            if column not in present:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def bytes_in_use(connection: sqlite3.Connection) -> int:
    """The store's pages in use, in bytes: the file less its free list. Rows deleted free their pages
    for later writes to reuse; the file itself shrinks only by a VACUUM, which would stop the store."""
    (page_count,), (free,), (page_size,) = (connection.execute(f"PRAGMA {name}").fetchone()
                                            for name in ("page_count", "freelist_count", "page_size"))
    return (page_count - free) * page_size


IDS_PER_QUERY = 500  # bound parameters per lookup, well inside SQLite's limit


def rows_with_ids(connection: sqlite3.Connection, query: str, ids: list) -> Iterator[tuple]:
    """The rows of query, whose one `{}` is an IN list, for every id: asked in chunks of IDS_PER_QUERY."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        yield from connection.execute(query.format(",".join("?" * len(chunk))), chunk)


def _in_transaction(connection: sqlite3.Connection, fn: Callable[..., T], *args) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = fn(connection, *args)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result
