"""Webhook endpoints and their deliveries in the confirmation store.

A delivery row is written in the same transaction as its confirmation, so a
crash never loses one; the dispatcher moves it PENDING -> DELIVERED, or after
the last attempt to DEAD_LETTER, from where a replay sets it PENDING again.
The signing secret is kept here because signing needs it; it is never listed.
After a rotation the previous secret signs too, until previous_secret_expire_time.
A deleted endpoint keeps its row (its request_id stays taken) and gets nothing more.

The same SQL on both backends (the PostgreSQL tables are in confirmations/schema/), but for the
lanes' reads, whose plan SQLite is told (INDEXED BY, json_each) and PostgreSQL finds by itself.
"""

import json
import sqlite3
import time

from bank.common.v1 import errors_pb2
from bank.confirmations.v1 import confirmations_pb2
from confirmations.channels import quota_subject
from paymesh.errors import Refused
from paymesh.postgres import PostgresConnection

PENDING = confirmations_pb2.DELIVERY_STATUS_PENDING
DELIVERED = confirmations_pb2.DELIVERY_STATUS_DELIVERED
DEAD_LETTER = confirmations_pb2.DELIVERY_STATUS_DEAD_LETTER

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS webhook_endpoint (
    endpoint_id TEXT PRIMARY KEY,
    channel INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    secret TEXT NOT NULL,
    create_time REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    previous_secret TEXT NOT NULL DEFAULT '',
    previous_secret_expire_time REAL NOT NULL DEFAULT 0,
    max_batch_size INTEGER NOT NULL DEFAULT 1,
    UNIQUE (channel, request_id)
);
CREATE INDEX IF NOT EXISTS endpoint_by_channel ON webhook_endpoint (channel) WHERE deleted = 0;
CREATE TABLE IF NOT EXISTS webhook_delivery (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoint (endpoint_id),
    sequence INTEGER NOT NULL,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (endpoint_id, sequence)
);
-- Each endpoint's lane reads its own pending deliveries: those never tried (due from the start) in sequence
-- order, and the retries that are due by their time, so a backlog waiting for retries is not walked at each read.
DROP INDEX IF EXISTS delivery_due;
CREATE INDEX IF NOT EXISTS delivery_untried ON webhook_delivery (endpoint_id, sequence)
    WHERE status = {PENDING} AND attempts = 0;
CREATE INDEX IF NOT EXISTS delivery_retry_due ON webhook_delivery (endpoint_id, next_attempt_at)
    WHERE status = {PENDING} AND attempts > 0;
CREATE INDEX IF NOT EXISTS delivery_pending_due ON webhook_delivery (endpoint_id, next_attempt_at)
    WHERE status = {PENDING};
"""

# For a store file made before rotation or batching (paymesh.sqlite.Store adds what is missing).
ADDED_COLUMNS = {"webhook_endpoint": {"previous_secret": "TEXT NOT NULL DEFAULT ''",
                                      "previous_secret_expire_time": "REAL NOT NULL DEFAULT 0",
                                      "max_batch_size": "INTEGER NOT NULL DEFAULT 1"}}
ENDPOINT_COLUMNS = "endpoint_id, url, description, secret, create_time, max_batch_size"
CREATED, EXISTING, DELETED = "created", "existing", "deleted"


def enqueue_deliveries(connection: sqlite3.Connection, first: int, last: int) -> int:
    """A pending delivery to every live endpoint of each confirmation's channel in [first, last];
    how many."""
    return connection.execute(
        "INSERT INTO webhook_delivery (endpoint_id, sequence, status, next_attempt_at)"
        " SELECT e.endpoint_id, c.sequence, ?, ? FROM confirmation c"
        " JOIN webhook_endpoint e ON e.channel = c.channel AND e.deleted = 0"
        " WHERE c.sequence BETWEEN ? AND ?",
        (PENDING, time.time(), first, last),
    ).rowcount


def create_endpoint(connection, channel: int, request_id: str, endpoint_id: str, url: str, description: str,
                    secret: str, max_batch_size: int, most: int) -> tuple[tuple, str]:
    """The endpoint row and CREATED (now), EXISTING (by an earlier create with this request_id) or DELETED
    (that earlier endpoint was deleted: it is not made again). A new one beyond the channel's most live
    endpoints is refused (QUOTA_EXCEEDED)."""
    existing = connection.execute(
        f"SELECT {ENDPOINT_COLUMNS}, deleted FROM webhook_endpoint WHERE channel = ? AND request_id = ?",
        (channel, request_id),
    ).fetchone()
    if existing:
        return existing[:-1], DELETED if existing[-1] else EXISTING
    live = connection.execute("SELECT count(*) FROM webhook_endpoint WHERE channel = ? AND deleted = 0",
                              (channel,)).fetchone()[0]
    if live >= most:
        raise quota_exceeded(channel, most, "live webhook endpoints")
    row = (endpoint_id, url, description, secret, time.time(), max_batch_size)
    connection.execute(
        "INSERT INTO webhook_endpoint (endpoint_id, url, description, secret, create_time, max_batch_size,"
        " channel, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*row, channel, request_id),
    )
    return row, CREATED


def quota_exceeded(channel: int, most: int, what: str) -> Refused:
    return Refused(errors_pb2.ERROR_REASON_QUOTA_EXCEEDED,
                   f"this channel already has {most} {what}, the most it may; delete one first",
                   quota=(quota_subject(channel), f"at most {most} {what}"))


def list_endpoints(connection, channel: int) -> list[tuple]:
    return connection.execute(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE channel = ? AND deleted = 0 ORDER BY create_time",
        (channel,),
    ).fetchall()


def owns_endpoint(connection, channel: int, endpoint_id: str) -> bool:
    return connection.execute(
        "SELECT 1 FROM webhook_endpoint WHERE endpoint_id = ? AND channel = ? AND deleted = 0", (endpoint_id, channel)
    ).fetchone() is not None


def delete_endpoint(connection, channel: int, endpoint_id: str) -> bool:
    """Marks the endpoint deleted and drops what it had not received yet; False if not the channel's."""
    if not owns_endpoint(connection, channel, endpoint_id):
        return False
    connection.execute("UPDATE webhook_endpoint SET deleted = 1 WHERE endpoint_id = ?", (endpoint_id,))
    connection.execute("DELETE FROM webhook_delivery WHERE endpoint_id = ? AND status != ?", (endpoint_id, DELIVERED))
    return True


def rotate_secret(connection, channel: int, endpoint_id: str, secret: str, previous_expire_time: float,
                  now: float) -> tuple | None:
    """The new secret signs from now on; the one it replaces signs beside it until previous_expire_time
    (not at all when that is now). A secret from an earlier rotation is dropped. None: not the channel's."""
    if not owns_endpoint(connection, channel, endpoint_id):
        return None
    connection.execute(
        "UPDATE webhook_endpoint SET previous_secret = CASE WHEN ? > ? THEN secret ELSE '' END,"
        " previous_secret_expire_time = ?, secret = ? WHERE endpoint_id = ?",
        (previous_expire_time, now, previous_expire_time, secret, endpoint_id),
    )
    return connection.execute(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE endpoint_id = ?",
                              (endpoint_id,)).fetchone()


def live_endpoints(connection) -> dict[str, int]:
    """Every live endpoint's channel, by endpoint id (each has a lane in the dispatcher)."""
    return dict(connection.execute("SELECT endpoint_id, channel FROM webhook_endpoint WHERE deleted = 0"))


def lane_work(connection, endpoint_id: str, now: float, in_flight: list[int], limit: int) -> tuple[tuple | None, list]:
    """What one endpoint's lane sends next: ((url, secret, previous_secret, max_batch_size) or None when the
    endpoint is deleted, and up to limit deliveries (sequence, attempts, body) due by now, in sequence order).

    Not those in flight (still PENDING here until their answer is recorded), and not one whose payment has an
    earlier delivery to this endpoint not yet DELIVERED: a payment's reversal waits for its application.
    previous_secret is '' outside a rotation's overlap."""
    endpoint = connection.execute(
        "SELECT url, secret, CASE WHEN previous_secret_expire_time > ? THEN previous_secret ELSE '' END,"
        " max_batch_size FROM webhook_endpoint WHERE endpoint_id = ? AND deleted = 0", (now, endpoint_id),
    ).fetchone()
    if endpoint is None or limit <= 0:
        return endpoint, []
    # The plan matters with a backlog: deliveries never tried (a new confirmation's, or a replayed one: due now)
    # are walked in sequence order on their own index until limit are found; retries come from the index of
    # due times, only those due now; PENDING and DELIVERED are written in the SQL (a partial index needs them
    # so). A row's earlier deliveries are found from its payment id (CROSS JOIN keeps that order).
    # On PostgreSQL the held sequences are an array (psycopg adapts a list) and its planner picks the
    # partial indexes and the join order itself (a CROSS JOIN there takes no ON).
    postgres = isinstance(connection, PostgresConnection)
    not_held_and_in_order = (
        (" AND d.sequence <> ALL (CAST(? AS BIGINT[]))" if postgres else
         " AND d.sequence NOT IN (SELECT value FROM json_each(?))")
        + " AND NOT EXISTS (SELECT 1 FROM confirmation earlier " + ("JOIN" if postgres else "CROSS JOIN")
        + " webhook_delivery e ON e.endpoint_id = d.endpoint_id AND e.sequence = earlier.sequence"
        f"   WHERE earlier.payment_id = c.payment_id AND earlier.sequence < c.sequence AND e.status != {DELIVERED})"
        " ORDER BY d.sequence LIMIT ?")
    held: object = in_flight if postgres else json.dumps(in_flight)
    untried_index, retry_index = ("", "") if postgres else (" INDEXED BY delivery_untried",
                                                             " INDEXED BY delivery_retry_due")
    untried = connection.execute(
        f"SELECT d.sequence, d.attempts, c.body FROM webhook_delivery d{untried_index}"
        f" JOIN confirmation c USING (sequence) WHERE d.endpoint_id = ? AND d.status = {PENDING} AND d.attempts = 0"
        + not_held_and_in_order, (endpoint_id, held, limit)).fetchall()
    retries = connection.execute(
        f"SELECT d.sequence, d.attempts, c.body FROM webhook_delivery d{retry_index}"
        f" JOIN confirmation c USING (sequence) WHERE d.endpoint_id = ? AND d.status = {PENDING}"
        " AND d.next_attempt_at <= ? AND d.attempts > 0" + not_held_and_in_order,
        (endpoint_id, now, held, limit)).fetchall()
    rows = sorted(untried + retries)[:limit]
    return endpoint, rows


def next_due_time(connection, endpoint_id: str) -> float | None:
    """When the endpoint's next pending delivery is due (None: nothing pending)."""
    return connection.execute(
        f"SELECT min(next_attempt_at) FROM webhook_delivery WHERE endpoint_id = ? AND status = {PENDING}",
        (endpoint_id,),
    ).fetchone()[0]


def record_attempts(connection, outcomes: list[list[tuple]]) -> None:
    """Each attempt's outcome, (status, attempts, next_attempt_at, last_error, endpoint_id, sequence), many
    POSTs' in one transaction (one fsync); a delivery deleted meanwhile (its endpoint was) stays deleted."""
    connection.executemany(
        "UPDATE webhook_delivery SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?"
        " WHERE endpoint_id = ? AND sequence = ?",
        [row for rows in outcomes for row in rows],
    )


def backlogs(connection, endpoint_ids: list[str]) -> dict[str, tuple[int, bytes | None]]:
    """Per endpoint, (pending deliveries, the oldest pending confirmation's body or None)."""
    counts: dict[str, tuple[int, bytes | None]] = {}
    for endpoint_id in endpoint_ids:
        count, oldest = connection.execute(
            f"SELECT count(*), min(sequence) FROM webhook_delivery WHERE endpoint_id = ? AND status = {PENDING}",
            (endpoint_id,),
        ).fetchone()
        body = None if oldest is None else connection.execute(
            "SELECT body FROM confirmation WHERE sequence = ?", (oldest,)).fetchone()[0]
        counts[endpoint_id] = (count, body)
    return counts


def replay(connection, channel: int, endpoint_id: str) -> int | None:
    """Dead letters of the endpoint back to pending, due now; how many (None: not the channel's endpoint)."""
    if not owns_endpoint(connection, channel, endpoint_id):
        return None
    return connection.execute(
        "UPDATE webhook_delivery SET status = ?, attempts = 0, next_attempt_at = ? "
        "WHERE endpoint_id = ? AND status = ?",
        (PENDING, time.time(), endpoint_id, DEAD_LETTER),
    ).rowcount


def list_deliveries(connection, channel: int, endpoint_id: str, status: int, limit: int) -> list[tuple] | None:
    """(endpoint_id, sequence, payment_id, status, attempts, last_error, next_attempt_at), newest first."""
    if not owns_endpoint(connection, channel, endpoint_id):
        return None
    sql = ("SELECT d.endpoint_id, d.sequence, c.payment_id, d.status, d.attempts, d.last_error, d.next_attempt_at"
           " FROM webhook_delivery d JOIN confirmation c USING (sequence) WHERE d.endpoint_id = ?")
    params: list = [endpoint_id]
    if status:
        sql += " AND d.status = ?"
        params.append(status)
    return connection.execute(sql + " ORDER BY d.sequence DESC LIMIT ?", (*params, limit)).fetchall()
