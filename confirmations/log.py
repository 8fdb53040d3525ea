"""The confirmation log: every payment result once per (payment_id, status), with a strictly
increasing sequence, and the durable consumers' acknowledged positions.

One SQL for both backends (paymesh.postgres): a SQLite file by default (SCHEMA, below), or the
service's PostgreSQL database (the numbered files of confirmations/schema/, POSTGRES_SCHEMA_DIR).
Every function here takes the connection first and runs on the store's own thread.

The sequence is not a database sequence: `append` gives the head plus one, inside its transaction.
On SQLite the file has one process. On PostgreSQL an active and a standby process share the
database, and every write transaction begins with the lease's fence (paymesh.lease.FencedStore):
only the lease holder writes, one transaction at a time on its store's one connection, and a
takeover waits for the deposed holder's fenced transactions to end. So each append reads the head
its predecessor committed, the numbers have no gaps (a rolled-back append gave none away), and
their order is the order of the commits: a subscriber that has read up to n has missed nothing
below n. (On SQLite the primary key on sequence would also refuse a second writer's number; on
PostgreSQL, where the table is partitioned by business_date and its keys must hold it, the fence alone
keeps the writer one.)
The idempotency key is (payment_id, status): a payment confirmed APPLIED and later
REVERSED has two confirmations; the same (payment_id, status) again is a duplicate
and keeps its first sequence and body. A revision of a payment's allocation (the reversal
of an earlier payment of its loan applied it again) is APPLIED once more: its key is the
payment id with ":R<n>" (`key_of`), so each revision is confirmed once.
"""

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmations_pb2
from confirmations import webhook_store
from paymesh.postgres import PostgresConnection, bytes_in_use, drop_day_partition, ensure_day_partitions_cached
from paymesh.retention import not_final
from paymesh.sqlite import rows_with_ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS confirmation (
    sequence INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    loan_type INTEGER NOT NULL,
    business_date TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (payment_id, status)
);
CREATE INDEX IF NOT EXISTS confirmation_by_channel ON confirmation (channel, sequence);
CREATE INDEX IF NOT EXISTS confirmation_by_date ON confirmation (business_date);
-- The business days dropped from the log once archived: the sequences they spanned, so that the
-- log's head never moves back and a subscriber resuming inside a dropped range is told so.
CREATE TABLE IF NOT EXISTS dropped_day (
    business_date TEXT PRIMARY KEY,
    first_sequence INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    confirmations INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumer (
    channel INTEGER NOT NULL,
    name TEXT NOT NULL,
    acked_sequence INTEGER NOT NULL,
    PRIMARY KEY (channel, name)
);
"""

# The PostgreSQL schema of the log and the webhooks' tables: numbered migrations (paymesh.postgres.migrate).
POSTGRES_SCHEMA_DIR = Path(__file__).parent / "schema"

Confirmation = confirmations_pb2.Confirmation


def head(connection: sqlite3.Connection) -> int:
    """The newest sequence the log gave (0 when none), dropped days' included: sequences only grow."""
    # (A max() of the two maxima, not SQLite's two-argument max(), which PostgreSQL has not.)
    return int(connection.execute("SELECT coalesce(max(newest), 0) FROM (SELECT max(sequence) AS newest FROM"
                                  " confirmation UNION ALL SELECT max(last_sequence) FROM dropped_day) AS heads"
                                  ).fetchone()[0])


@dataclass
class Appended:
    """What appending one publish message made: per item (sequence, duplicate), the new
    confirmations in sequence order, and how many webhook deliveries they made."""

    acks: list[tuple[int, bool]] = field(default_factory=list)
    new: list[Confirmation] = field(default_factory=list)
    deliveries: int = 0


def key_of(item: Confirmation) -> str:
    """The payment_id column: the payment's id, with ":R<n>" for the n-th revision of its allocation."""
    return f"{item.payment_id}:R{item.revision}" if item.revision else item.payment_id


def append(connection: sqlite3.Connection, batches: Sequence[Sequence[Confirmation]]) -> list[Appended]:
    """Appends valid confirmations inside the caller's transaction (a group commit of messages)."""
    # First in the transaction: the partitions of the days it may write, on PostgreSQL.
    ensure_day_partitions_cached(connection, "confirmation",
                                 {item.business_date for batch in batches for item in batch})
    sequence = head(connection) + 1
    keys = [[(key_of(item), item.status) for item in batch] for batch in batches]
    # Every key looked up at once and the new rows written with one statement: the per-item
    # statements were most of a commit's work. A key twice in the commit is a duplicate the second time.
    # The lookup is by payment id in every day: on PostgreSQL the unique key holds business_date too
    # (a partitioned table's must), and a republished confirmation has its first one's date anyway
    # (the router sends its outbox row's body again, made once).
    known = _sequences_of(connection, {key for batch_keys in keys for key in batch_keys})
    results, rows = [], []
    for batch, batch_keys in zip(batches, keys):
        appended = Appended()
        for item, key in zip(batch, batch_keys):
            if key in known:
                appended.acks.append((known[key], True))
                continue
            stored = Confirmation()
            stored.CopyFrom(item)
            stored.sequence = sequence
            amount = item.amount
            rows.append((sequence, key[0], key[1], item.channel, item.loan_type, item.business_date,
                         amount.currency_code, amount.amount_minor, stored.SerializeToString()))
            known[key] = sequence
            appended.acks.append((sequence, False))
            appended.new.append(stored)
            sequence += 1
        results.append(appended)
    connection.executemany("INSERT INTO confirmation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for appended in results:
        if appended.new:
            # In the same transaction: a confirmation is never durable without its webhook deliveries.
            appended.deliveries = webhook_store.enqueue_deliveries(
                connection, appended.new[0].sequence, appended.new[-1].sequence)
    return results


def _sequences_of(connection: sqlite3.Connection, keys: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The sequence of each (payment_id, status) already in the log."""
    payment_ids = sorted({payment_id for payment_id, _ in keys})
    rows = rows_with_ids(
        connection, "SELECT payment_id, status, sequence FROM confirmation WHERE payment_id IN ({})", payment_ids)
    return {(payment_id, status): sequence for payment_id, status, sequence in rows if (payment_id, status) in keys}


def read_after(
    connection: sqlite3.Connection, channel: int, after: int, loan_types: Sequence[int],
    statuses: Sequence[int], limit: int,
) -> tuple[list[bytes], int]:
    """Up to limit serialized confirmations of channel after sequence `after` matching the filter,
    and the sequence of the last one (or `after` when none)."""
    sql = "SELECT sequence, body FROM confirmation WHERE channel = ? AND sequence > ?"
    params: list = [channel, after]
    for column, values in (("loan_type", loan_types), ("status", statuses)):
        if values:
            sql += f" AND {column} IN ({','.join('?' * len(values))})"
            params.extend(values)
    rows = connection.execute(sql + " ORDER BY sequence LIMIT ?", (*params, limit)).fetchall()
    return [body for _, body in rows], (rows[-1][0] if rows else after)


def consumer_position(connection: sqlite3.Connection, channel: int, name: str) -> int | None:
    row = connection.execute(
        "SELECT acked_sequence FROM consumer WHERE channel = ? AND name = ?", (channel, name)
    ).fetchone()
    return row[0] if row else None


def create_consumer(connection: sqlite3.Connection, channel: int, name: str, position: int, most: int) -> None:
    """Registers a consumer at position unless it exists (then its position is kept); a new one
    beyond the channel's most consumers is refused (QUOTA_EXCEEDED)."""
    known = connection.execute("SELECT 1 FROM consumer WHERE channel = ? AND name = ?", (channel, name)).fetchone()
    if known is None:
        count = connection.execute("SELECT count(*) FROM consumer WHERE channel = ?", (channel,)).fetchone()[0]
        if count >= most:
            raise webhook_store.quota_exceeded(channel, most, "durable consumers")
    connection.execute(
        "INSERT INTO consumer (channel, name, acked_sequence) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (channel, name, position))


def acknowledge(connection: sqlite3.Connection, channel: int, name: str, sequence: int) -> int | None:
    """Moves the consumer's position forward (never back); its new position, None if unknown."""
    connection.execute(
        "UPDATE consumer SET acked_sequence = CASE WHEN acked_sequence < ? THEN ? ELSE acked_sequence END"
        " WHERE channel = ? AND name = ?", (sequence, sequence, channel, name),
    )
    return consumer_position(connection, channel, name)


def summarize(connection: sqlite3.Connection, business_date: str) -> list[tuple[int, int, int, str, int, int]]:
    """(channel, loan type, status, currency, count, sum of amount_minor) for a business date."""
    return connection.execute(
        # sum() of a BIGINT is a NUMERIC on PostgreSQL: cast back to an integer, as SQLite's is.
        "SELECT channel, loan_type, status, currency, count(*), CAST(sum(amount_minor) AS BIGINT) FROM confirmation"
        " WHERE business_date = ? GROUP BY channel, loan_type, status, currency ORDER BY 1, 2, 3, 4",
        (business_date,),
    ).fetchall()


def day_confirmations(connection: sqlite3.Connection, business_date: str) -> list[Confirmation]:
    """Every confirmation booked on the date, in log order."""
    rows = connection.execute("SELECT sequence, body FROM confirmation WHERE business_date = ? ORDER BY sequence",
                              (business_date,)).fetchall()
    confirmations = []
    for sequence, body in rows:
        confirmation = Confirmation.FromString(body)
        confirmation.sequence = sequence
        confirmations.append(confirmation)
    return confirmations


def drop_day(connection: sqlite3.Connection, business_date: str) -> types_pb2.DroppedBusinessDay:
    """Drops the day's confirmations and their finished webhook deliveries; refuses (nothing dropped)
    while a delivery of the day is still pending."""
    before = bytes_in_use(connection)
    of_day = "SELECT sequence FROM confirmation WHERE business_date = ?"
    # A deleted endpoint's deliveries are never tried again: they do not hold the day.
    (pending,) = connection.execute(
        f"SELECT count(*) FROM webhook_delivery d JOIN webhook_endpoint e ON e.endpoint_id = d.endpoint_id"
        f" WHERE d.status = ? AND e.deleted = 0 AND d.sequence IN ({of_day})",
        (webhook_store.PENDING, business_date)).fetchone()
    if pending:
        raise not_final(f"{pending} webhook deliveries of {business_date} are still pending: they are retried until"
                        " delivered or dead-lettered (ListWebhookDeliveries)")
    first, last, count = connection.execute(
        "SELECT min(sequence), max(sequence), count(*) FROM confirmation WHERE business_date = ?",
        (business_date,)).fetchone()
    if count:
        connection.execute(
            "INSERT INTO dropped_day AS kept VALUES (?, ?, ?, ?) ON CONFLICT (business_date) DO UPDATE SET"
            " first_sequence = CASE WHEN excluded.first_sequence < kept.first_sequence"
            " THEN excluded.first_sequence ELSE kept.first_sequence END,"
            " last_sequence = CASE WHEN excluded.last_sequence > kept.last_sequence"
            " THEN excluded.last_sequence ELSE kept.last_sequence END,"
            " confirmations = kept.confirmations + excluded.confirmations", (business_date, first, last, count))
        # The deliveries are deleted (they have no business date to be partitioned by; a day's are few
        # once delivered); the confirmations' partition is dropped, its space given back at once. Nothing
        # of it is kept: what a subscriber needs of a dropped day is the range in dropped_day, above.
        connection.execute(f"DELETE FROM webhook_delivery WHERE sequence IN ({of_day})", (business_date,))
        if isinstance(connection, PostgresConnection):
            drop_day_partition(connection, "confirmation", business_date)
        else:
            connection.execute("DELETE FROM confirmation WHERE business_date = ?", (business_date,))
    return types_pb2.DroppedBusinessDay(business_date=business_date, dropped_count=count, store_bytes_before=before,
                                        store_bytes_after=bytes_in_use(connection))


def dropped_after(connection: sqlite3.Connection, position: int) -> tuple[str, int] | None:
    """(the dropped days, comma-separated, their last sequence) of confirmations after position that
    were dropped, which a subscriber resuming there would miss; None when there are none."""
    rows = connection.execute("SELECT business_date, last_sequence FROM dropped_day WHERE last_sequence > ?"
                              " ORDER BY business_date", (position,)).fetchall()
    return (", ".join(day for day, _ in rows), max(last for _, last in rows)) if rows else None


def consumer_lags(connection: sqlite3.Connection) -> list[tuple[int, str, int]]:
    """(channel, consumer name, confirmations of its channel after its acknowledged position) of every
    durable consumer: a range of the (channel, sequence) index each."""
    return connection.execute(
        "SELECT c.channel, c.name, (SELECT count(*) FROM confirmation f WHERE f.channel = c.channel"
        " AND f.sequence > c.acked_sequence) FROM consumer c ORDER BY c.channel, c.name").fetchall()
