"""PostgreSQL stores for the services: the production backend beside SQLite (paymesh.sqlite).

A service's store code is functions of one connection (`fn(connection, ...)`), run on the
store's own thread, inside `await store.transaction(fn, ...)`. PostgresStore keeps that
interface, so the same functions and the same SQL run on either backend:

- the SQL is written once, in the subset both speak (`?` placeholders, `ON CONFLICT`,
  `RETURNING`); PostgresConnection turns `?` into psycopg's `%s`;
- the schema is not: each store keeps its PostgreSQL schema as numbered SQL files
  (`0001_first.sql`, ...), applied in order by `migrate` under an advisory lock, so replicas
  starting at once apply each file once.

Which backend a service uses: PAYMESH_<SERVICE>_DATABASE_URL, else PAYMESH_DATABASE_URL
(a postgresql:// URL, each service its own database); neither set, SQLite in PAYMESH_DATA_DIR.
"""

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from paymesh import sqlite

log = logging.getLogger(__name__)
T = TypeVar("T")
MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
CONNECT_TIMEOUT_SECONDS = 5


# What a store's statement raises when the store itself failed (not the item at hand), on either
# backend: the transaction is rolled back whole, never answered item by item.
STORE_FAILURES: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)


class DatabaseUnavailable(Exception):
    """The store cannot be opened: unreachable, refused credentials, or a schema this code does not
    know. The message says which, for a person, without the URL's password."""


# What a store call raises when the store cannot be used just now, not because of the work at hand: the
# connection lost (a database failover, a restart), the database not reached, a SQLite file locked or
# its disk failing. Nothing of the transaction was kept; the same work, sent again later, can succeed.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, DatabaseUnavailable,
                                                  sqlite3.OperationalError)


def database_url(env_prefix: str, environ: dict[str, str] | None = None) -> str | None:
    """PAYMESH_<SERVICE>_DATABASE_URL (env_prefix is e.g. PAYMESH_CORE_CASH), else PAYMESH_DATABASE_URL."""
    environ = dict(os.environ) if environ is None else environ
    for name in (f"{env_prefix}_DATABASE_URL", "PAYMESH_DATABASE_URL"):
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def redacted(url: str) -> str:
    """The URL as a log line may show it: no password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=1024)
def to_psycopg(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (and a literal `%` to `%%`), outside quoted text."""
    out: list[str] = []
    quote = ""
    for char in sql:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        if char == "%":
            out.append("%%")
            continue
        out.append(char)
    return "".join(out)


class PostgresConnection:
    """A psycopg connection that takes the SQL the SQLite stores write: execute, executemany and
    the cursor's fetchone/fetchall/iteration, as sqlite3.Connection has them."""

    def __init__(self, connection: psycopg.Connection):
        self.raw = connection
        # (table, business date) of the day partitions this connection saw made (ensure_day_partitions_cached)
        self.known_day_partitions: set[tuple[str, str]] = set()

    # Typed Any, as sqlite3's rows are: a store function reads rows the same way on both backends.
    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        return self.raw.execute(to_psycopg(sql), tuple(parameters))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(to_psycopg(sql), [tuple(row) for row in rows])
        return cursor

    def close(self) -> None:
        self.raw.close()


# What a store function is given: the store's connection on either backend.
Connection = sqlite3.Connection | PostgresConnection


def bytes_in_use(connection: Connection) -> int:
    """The store's size in use: SQLite's pages less its free list; PostgreSQL's tables with their
    indexes and TOAST (a deleted row's space is reused after a vacuum, not given back)."""
    if isinstance(connection, sqlite3.Connection):
        return sqlite.bytes_in_use(connection)
    row = connection.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'").fetchone()
    return int(row[0]) if row else 0


BUSINESS_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def day_partition(table: str, business_date: str) -> str:
    """The name of table's partition for one business day: `confirmation_20261203`."""
    if not BUSINESS_DATE.match(business_date):
        raise ValueError(f"not an ISO business date: {business_date!r}")
    return f"{table}_{business_date.replace('-', '')}"


def ensure_day_partitions(connection: PostgresConnection, table: str, business_dates: Iterable[str]) -> list[str]:
    """The partition of table (`PARTITION BY LIST (business_date)`) for each date, made where missing;
    the dates made. Call it first in a transaction, before the rows are written: it takes an advisory
    lock per table (replicas making the same day at once make it once) before the parent's lock."""
    made: list[str] = []
    missing = [d for d in sorted(set(business_dates)) if not _exists(connection, day_partition(table, d))]
    if missing:
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"partition {table}",))
    for business_date in missing:
        name = day_partition(table, business_date)
        if not _exists(connection, name):  # (another replica may have made it while we waited)
            connection.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES IN ('{business_date}')")
            made.append(business_date)
    return made


def ensure_day_partitions_cached(connection: Connection, table: str, business_dates: Iterable[str]) -> None:
    """ensure_day_partitions for the dates whose partitions this connection has not yet seen made: a
    store's write calls it first in its transaction, at the cost of a set lookup once its days exist.
    The cache is exact because it forgets: a transaction that fails (in_transaction), and so may have
    rolled back a partition it made, empties it; a day dropped here leaves it (drop_day_partition);
    a new connection (a reconnection, another process) starts empty. Nothing on SQLite (one table)."""
    if isinstance(connection, sqlite3.Connection):
        return
    missing = {d for d in business_dates if (table, d) not in connection.known_day_partitions}
    if missing:
        ensure_day_partitions(connection, table, missing)
        connection.known_day_partitions.update((table, d) for d in missing)


def _exists(connection: PostgresConnection, table: str) -> bool:
    # pg_class read by a query, not to_regclass: the query's snapshot sees a table another
    # connection committed while we waited for the lock; the catalog cache may not yet.
    return connection.execute("SELECT 1 FROM pg_class WHERE relname = ? AND relnamespace = "
                              "current_schema()::regnamespace", (table,)).fetchone() is not None


def drop_day_partition(connection: PostgresConnection, table: str, business_date: str,
                       keep_where: str = "", parameters: Sequence[Any] = ()) -> None:
    """Drops table's partition for the day, giving its space back at once (a DELETE would only free
    it for reuse after a vacuum). The rows matching keep_where (SQL on the day's rows; none when
    empty) stay: they are copied into a new, small partition for the day first."""
    name = day_partition(table, business_date)
    connection.known_day_partitions.discard((table, business_date))
    if not _exists(connection, name):
        return
    connection.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
    connection.execute(f"ALTER TABLE {name} RENAME TO {name}_dropped")
    if keep_where:
        connection.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES IN ('{business_date}')")
        connection.execute(f"INSERT INTO {table} SELECT * FROM {name}_dropped WHERE {keep_where}", parameters)
    connection.execute(f"DROP TABLE {name}_dropped")


def connect(url: str) -> PostgresConnection:
    """One connection in autocommit mode: a store's transactions are its own BEGIN ... COMMIT."""
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                     application_name="paymesh")
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(f"cannot open PostgreSQL database {redacted(url)}: "
                                  f"{str(error).strip().splitlines()[-1]}") from error
    return PostgresConnection(connection)


def migrations_in(schema_dir: Path) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of each numbered file, in order; versions must run 1, 2, 3, ..."""
    found = []
    for path in sorted(schema_dir.iterdir()):
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path.name, path.read_text()))
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise ValueError(f"{schema_dir}: migration {name} should be number {expected:04d}")
    return found


def migrate(connection: PostgresConnection, schema_dir: Path) -> int:
    """Apply the files of schema_dir the database lacks, each in its own transaction, under an
    advisory lock (replicas starting together wait for each other); the schema's version after.
    A database at a version newer than these files is refused: this code would misread it."""
    files = migrations_in(schema_dir)
    lock_key = int.from_bytes(hashlib.sha256(str(schema_dir.name).encode()).digest()[:8], "big", signed=True)
    raw = connection.raw
    raw.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
    try:
        raw.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = raw.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = row[0] if row else 0
        if current > len(files):
            raise DatabaseUnavailable(
                f"the database's schema is at version {current}, newer than this release knows ({len(files)}):"
                " it was migrated by a later release; run that release, or restore a backup taken before it")
        for version, name, sql in files[current:]:
            with raw.transaction():
                raw.execute(sql.encode())
                raw.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            log.info("schema migrated", extra={"version": version, "migration": name})
        return max(current, len(files))
    finally:
        raw.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))


class PostgresStore:
    """A PostgreSQL database used from asyncio like paymesh.sqlite.Store: `await store.run(fn, ...)`
    calls fn(connection, ...) on the store's own thread, one call at a time."""

    def __init__(self, url: str, schema_dir: Path, name: str = "store"):
        self.url = url
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"postgres-{name}")
        # What a new connection is given before use (session settings): each reconnection too.
        self.on_reconnect: Callable[[PostgresConnection], None] = lambda connection: None
        self._reader: PostgresConnection | None = None  # read(): made on first use, on its own thread
        self._reader_executor: ThreadPoolExecutor | None = None
        self.connection = self._executor.submit(connect, url).result()
        try:
            self.schema_version = self._executor.submit(migrate, self.connection, schema_dir).result()
        except BaseException:
            self.close()
            raise

    async def run(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn, *args)

    def _call(self, fn: Callable[..., T], *args) -> T:
        # A connection the server ended (a restart, a failover, a transaction ended for idling) is
        # opened again for the next call; the call that found it broken has failed (its caller retries).
        if self.connection.raw.broken or self.connection.raw.closed:
            log.warning("PostgreSQL connection lost; opening it again", extra={"store": self.name})
            self.connection = connect(self.url)
            self.on_reconnect(self.connection)
        return fn(self.connection, *args)

    async def transaction(self, fn: Callable[..., T], *args) -> T:
        """fn(connection, ...) inside BEGIN ... COMMIT; rolled back if it raises."""
        return await self.run(in_transaction, fn, *args)

    async def read(self, fn: Callable[..., T], *args) -> T:
        """fn(connection, ...) on a read-only connection and a thread of their own, as
        paymesh.sqlite.Store.read: the metrics' samples never wait behind, nor hold up, the store's work."""
        if self._reader_executor is None:
            self._reader_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"postgres-read-{self.name}")
        return await asyncio.get_running_loop().run_in_executor(self._reader_executor, self._read, fn, *args)

    def _read(self, fn: Callable[..., T], *args) -> T:
        if self._reader is None or self._reader.raw.broken or self._reader.raw.closed:
            self._reader = connect(self.url)
            self._reader.raw.execute("SET default_transaction_read_only = on")
        return fn(self._reader, *args)

    def close(self) -> None:
        if self._reader_executor is not None:
            if self._reader is not None:
                self._reader_executor.submit(self._reader.close).result()
            self._reader_executor.shutdown()
            self._reader_executor, self._reader = None, None
        self._executor.submit(self.connection.close).result()
        self._executor.shutdown()


def pipelined(connection: Any) -> contextlib.AbstractContextManager:
    """Around many statements of one transaction on either backend: on PostgreSQL, psycopg's
    pipeline mode (the statements go out without waiting for each answer; a read waits for those
    before it), so a group commit costs a few round trips instead of one per statement. An error
    then surfaces at the next read or at the end: as a store failure, the transaction's whole.
    On SQLite, nothing (a statement is a function call)."""
    return connection.raw.pipeline() if isinstance(connection, PostgresConnection) else contextlib.nullcontext()


# A transaction PostgreSQL aborted to let a concurrent one through (replicas writing the same rows in
# another order) is run again: store functions are functions of the database, so a rerun is the same work.
RETRIED = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
ATTEMPTS = 5


def in_transaction(connection: PostgresConnection, fn: Callable[..., T], *args) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with connection.raw.transaction():
                return fn(connection, *args)
        except BaseException as failed:
            # A day partition the transaction made went with it: the next write looks again.
            connection.known_day_partitions.clear()
            if not isinstance(failed, RETRIED) or attempt == ATTEMPTS:
                raise
            log.warning("transaction aborted by a concurrent one; run again",
                        extra={"attempt": attempt, "reason": type(failed).__name__})
    raise AssertionError("unreachable: the last attempt returns or raises")
