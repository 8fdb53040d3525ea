"""The router's durable journal: every accepted payment, its result, and an outbox
of what must still reach the mainframe bridge and confirmations.

A payment is journaled before it goes to its core; its result and the outbox rows
for the ledger and the confirmation are written in one transaction, so a router
killed at any instant leaves nothing applied but never posted or confirmed: at
start it resends what is unanswered and forwards what is in the outbox.
Concurrent writes are grouped into one transaction (group commit).

An outbox row its peer refused is never forgotten: it is marked refused (with the
peer's reason) and waits, out of the forwarders' way, for an operator to replay it.
"""

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import ledger_pb2
from bank.payments.v1 import payments_pb2
from paymesh.group_commit import PRIORITY_LANES, GroupCommit, lane_of
from paymesh.errors import Refused
from paymesh.postgres import (STORE_UNAVAILABLE, Connection, PostgresConnection, PostgresStore, bytes_in_use,
                              database_url, drop_day_partition, ensure_day_partitions_cached, pipelined)
from paymesh.retention import not_final
from paymesh.sqlite import Store

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS payment (
    payment_id TEXT PRIMARY KEY,
    channel INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    loan_type INTEGER NOT NULL,
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    business_date TEXT NOT NULL,             -- the booking date
    status INTEGER NOT NULL,
    batch_id TEXT,
    payment BLOB NOT NULL,
    -- Kept beside the blob: set once confirmations acknowledge, without rewriting the payment.
    confirmation_sequence INTEGER NOT NULL DEFAULT 0,
    value_date TEXT NOT NULL DEFAULT '',
    reversal_date TEXT                        -- the business day its reversal was booked in
);
CREATE INDEX IF NOT EXISTS payment_by_day ON payment (business_date, channel);
CREATE INDEX IF NOT EXISTS payment_by_status ON payment (status);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    item_key TEXT NOT NULL,
    body BLOB NOT NULL,
    traceparent TEXT NOT NULL,
    refused_at REAL,                          -- set when the peer refused it: waits for an operator
    refused_reason INTEGER NOT NULL DEFAULT 0,
    refused_message TEXT NOT NULL DEFAULT '',
    queued_at REAL NOT NULL DEFAULT 0,        -- when it was written (the oldest row's age is a gauge)
    UNIQUE (topic, item_key)
);
-- An uploaded file's line results, for ListBatchResults: the journaled payment, or the refusal the
-- router answered itself (such a line was never journaled). An upload of the same file again
-- writes the same rows.
CREATE TABLE IF NOT EXISTS batch_line (
    channel INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    line_number INTEGER NOT NULL,
    payment_id TEXT,
    refusal BLOB,
    PRIMARY KEY (channel, batch_id, line_number)
) WITHOUT ROWID;
-- What a dropped (archived) day leaves of each payment: its key, for paymesh.retention's time, so the
-- same key sent again is answered, never applied twice; and the days dropped.
CREATE TABLE IF NOT EXISTS archived_payment (
    payment_id TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    business_date TEXT NOT NULL,
    status INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS archived_payment_by_day ON archived_payment (business_date);
CREATE TABLE IF NOT EXISTS dropped_day (business_date TEXT PRIMARY KEY) WITHOUT ROWID;
"""
# What a journal made by an earlier version lacks, and the indexes on it.
ADDED_COLUMNS = {
    "payment": {"value_date": "TEXT NOT NULL DEFAULT ''", "reversal_date": "TEXT"},
    "outbox": {"refused_at": "REAL", "refused_reason": "INTEGER NOT NULL DEFAULT 0",
               "refused_message": "TEXT NOT NULL DEFAULT ''", "queued_at": "REAL NOT NULL DEFAULT 0"},
}
INDEXES = """
CREATE INDEX IF NOT EXISTS payment_by_reversal_day ON payment (reversal_date) WHERE reversal_date IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_refused ON outbox (id) WHERE refused_at IS NOT NULL;
"""
ACCEPTED = 1  # bank.common.v1.PAYMENT_STATUS_ACCEPTED
# The outbox's topics: postings to the mainframe bridge, and confirmations. A day file's confirmations
# have a topic (and a stream to confirmations) of their own, so that thousands of them never stand
# between an online payment and its confirmation sequence.
POSTINGS, CONFIRMATIONS, CONFIRMATIONS_BATCH = "posting", "confirmation", "confirmation-batch"
FILE_PAYMENTS_PER_COMMIT = 500
# A payment goes once its booking day and its reversal's day are both dropped (the day being dropped
# is in dropped_day by then): each day's reconciliation, and so its archive, lists it. Of a payment p,
# with the day twice.
GOES_WITH_DAY = ("(p.business_date = ? OR p.reversal_date = ?) AND p.business_date IN (SELECT business_date"
                 " FROM dropped_day) AND (p.reversal_date IS NULL OR p.reversal_date IN (SELECT business_date"
                 " FROM dropped_day))")
# What of a dropped day's payments stays: those reversed on a day not dropped yet.
STAYS_AFTER_ITS_DAY = "reversal_date IS NOT NULL AND reversal_date NOT IN (SELECT business_date FROM dropped_day)"
# How long a replica holds the outbox rows it claimed on a shared journal: renewed while their peer has
# not answered (payment_router.outbox), so this is how soon another replica takes the rows of one that died.
CLAIM_LEASE_SECONDS = 5.0


@dataclass(frozen=True)
class Accepted:
    payment: payments_pb2.Payment
    body_hash: str
    batch_id: str = ""


@dataclass(frozen=True)
class Outcome:
    """What accept() found: the journaled payment and whether it was new."""

    payment: payments_pb2.Payment
    body_hash: str
    new: bool
    archived: bool = False  # made on a day since dropped: payment holds only its id, day and status


OutboxRow = tuple[int, str, bytes, str]  # (id, key, body, traceparent), as the forwarders send it


@dataclass(frozen=True)
class Recorded:
    """What a record wrote to the outbox, (topic, row) in id order: told to Journal.on_written after
    its commit. Empty on a shared journal, whose forwarders claim their rows from the table."""

    rows: list[tuple[str, OutboxRow]] = field(default_factory=list)


POSTGRES_SCHEMA = Path(__file__).with_name("schema")  # numbered SQL files (paymesh.postgres.migrate)
DATABASE_ENV_PREFIX = "PAYMESH_PAYMENT_ROUTER"  # PAYMESH_PAYMENT_ROUTER_DATABASE_URL, else PAYMESH_DATABASE_URL

# The statements that differ by backend. On PostgreSQL payments are partitioned by booking date
# (schema/0002_journal_by_day.sql): a payment id is unique in payment_key, which says its day (its
# partition) and keeps the key once the day is dropped; SQLite's payment table is one, by id, and a
# dropped day's keys are in archived_payment. The rest of the SQL is the same on both.
INSERT_PAYMENT = (
    "INSERT INTO payment (payment_id, channel, idempotency_key, body_hash, loan_type, currency, amount_minor,"
    " business_date, status, batch_id, payment, value_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id")
# The key claimed and the payment written in one statement (one round trip, as on SQLite); the payment
# only if the key was free.
INSERT_PAYMENT_CLAIMING_KEY = (
    "WITH new (payment_id, channel, idempotency_key, body_hash, loan_type, currency, amount_minor, business_date,"
    " status, batch_id, payment, value_date) AS (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)),"
    " claimed AS (INSERT INTO payment_key (payment_id, business_date) SELECT payment_id, business_date FROM new"
    " ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id)"
    " INSERT INTO payment (payment_id, channel, idempotency_key, body_hash, loan_type, currency, amount_minor,"
    " business_date, status, batch_id, payment, value_date) SELECT new.* FROM new JOIN claimed USING (payment_id)"
    " RETURNING payment_id")
# A key's payment where its day is still hot, or what its dropped day left of it (status not NULL).
KNOWN_BY_KEY = (
    "SELECT p.payment, p.confirmation_sequence, p.body_hash, k.body_hash, k.business_date, k.status"
    " FROM payment_key k LEFT JOIN payment p ON p.business_date = k.business_date AND p.payment_id = k.payment_id"
    " WHERE k.payment_id = ?")
GET_BY_KEY = (
    "SELECT p.payment, p.confirmation_sequence FROM payment_key k JOIN payment p"
    " ON p.business_date = k.business_date AND p.payment_id = k.payment_id WHERE k.payment_id = ?")
INSERT_OUTBOX = ("INSERT INTO outbox (topic, item_key, body, traceparent, queued_at) VALUES (?, ?, ?, ?, ?)"
                 " ON CONFLICT (topic, item_key) DO NOTHING")
SET_CONFIRMATION_SEQUENCE = "UPDATE payment SET confirmation_sequence = ? WHERE payment_id = ?"
SET_CONFIRMATION_SEQUENCE_BY_KEY = (
    "UPDATE payment SET confirmation_sequence = ? FROM payment_key k WHERE k.payment_id = ?"
    " AND payment.business_date = k.business_date AND payment.payment_id = k.payment_id")
BATCH_RESULTS = (
    "SELECT b.line_number, b.refusal, p.payment, p.confirmation_sequence, b.payment_id, a.business_date,"
    " a.status FROM batch_line b LEFT JOIN payment p ON p.payment_id = b.payment_id"
    " LEFT JOIN archived_payment a ON p.payment_id IS NULL AND a.payment_id = b.payment_id"
    " WHERE b.channel = ? AND b.batch_id = ? AND b.line_number > ? ORDER BY b.line_number LIMIT ?")
BATCH_RESULTS_BY_KEY = (
    "SELECT b.line_number, b.refusal, p.payment, p.confirmation_sequence, b.payment_id, k.business_date,"
    " k.status FROM batch_line b LEFT JOIN payment_key k ON k.payment_id = b.payment_id"
    " LEFT JOIN payment p ON p.business_date = k.business_date AND p.payment_id = k.payment_id"
    " WHERE b.channel = ? AND b.batch_id = ? AND b.line_number > ? ORDER BY b.line_number LIMIT ?")


def open_store(data_dir: Path, environ: dict[str, str] | None = None) -> Store | PostgresStore:
    """The journal's store: PostgreSQL when a database URL is set (one journal for every router
    replica), else the SQLite file in the data folder. Raises DatabaseUnavailable."""
    url = database_url(DATABASE_ENV_PREFIX, environ)
    if url:
        return PostgresStore(url, POSTGRES_SCHEMA, name="journal")
    return Store(data_dir / "payment-router.db", SCHEMA, ADDED_COLUMNS, INDEXES)


class Journal:
    def __init__(self, store: Store | PostgresStore | Path):
        """On a store (open_store), or a SQLite file at a path."""
        self._store = Store(store, SCHEMA, ADDED_COLUMNS, INDEXES) if isinstance(store, Path) else store
        # On PostgreSQL every router replica writes it, not this process alone.
        self.shared = isinstance(self._store, PostgresStore)
        # Who holds the outbox rows this process claims there: new at each start, so a restarted replica
        # takes what it held before only once the lease lapses, as any other would.
        self.claimant = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}" if self.shared else ""
        # Accepts and results of every stream and online call share commits: (operation, its arguments).
        # Lanes by priority (paymesh.group_commit.lane_of), a day file's payments at most
        # FILE_PAYMENTS_PER_COMMIT a commit, so that one never holds an online payment long.
        self._commits = GroupCommit(self._store, _apply_group, name="journal-commit", lanes=PRIORITY_LANES,
                                    weight=_weight, lane_max_weight=(None, None, FILE_PAYMENTS_PER_COMMIT),
                                    on_commit=self._committed)
        # Told of each outbox row a record wrote, once committed, in id order (payment_router.outbox:
        # its forwarders send them without reading them back).
        self.on_written: Callable[[str, OutboxRow], None] | None = None

    async def close(self) -> None:
        await self._commits.close()
        self._store.close()

    def _committed(self, results: list) -> None:
        if self.on_written is None:
            return
        for result in results:
            if isinstance(result, Recorded):
                for topic, row in result.rows:
                    self.on_written(topic, row)

    async def accept(self, entries: list[Accepted],
                     priority: types_pb2.Priority = types_pb2.PRIORITY_ONLINE) -> list[Outcome]:
        """Journals each new payment, or finds the one already journaled under its id; one commit,
        in the lane of who waits for them. Raises Refused (DOWNSTREAM_UNAVAILABLE) while the journal
        cannot be written (a database failover): the caller sends the same keys again."""
        try:
            return await self._commits.submit(("accept", (entries,)), lane_of(priority))
        except STORE_UNAVAILABLE as failed:
            log.warning("the journal cannot be written just now", extra={"error": type(failed).__name__,
                                                                         "detail": str(failed).strip()[:200]})
            raise Refused(errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                          "the payment journal cannot be written just now; send the payment again with the same"
                          " idempotency key (it is applied once)", retry_after=1.0) from failed

    async def record(self, payment: payments_pb2.Payment, outbox: list[tuple[str, str, bytes, str]],
                     priority: types_pb2.Priority = types_pb2.PRIORITY_ONLINE, hold: bool = True) -> None:
        """Stores the payment's new state and its outbox rows (topic, key, body, traceparent) in one commit.
        On a shared journal the rows are claimed by this replica as they are written (hold), so its own
        forwarder sends them at once; a correction (hold=False), which waits behind what it corrects,
        is left to whichever replica finds it claimable first."""
        claimant = self.claimant if hold else ""
        await self._commits.submit(("record", (payment, outbox, claimant)), lane_of(priority))

    async def queued(self, topic: str, keys: list[str]) -> set[str]:
        """Which of these keys still have a row of the topic in the outbox."""
        marks = ", ".join("?" * len(keys))
        return await self._store.run(lambda c: {row[0] for row in c.execute(
            f"SELECT item_key FROM outbox WHERE topic = ? AND item_key IN ({marks})", (topic, *keys))})

    async def done(self, delivered: list[tuple[str, list[str], dict[str, int]]]) -> None:
        """Forgets delivered outbox rows (topic, keys) and keeps the confirmation sequences
        they got, in one commit."""
        await self._store.transaction(_delivered, delivered)

    async def outbox(self, topic: str, after_id: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        """(id, key, body, traceparent) of the topic's rows after after_id, oldest first."""
        return await self._store.run(
            lambda c: c.execute(
                "SELECT id, item_key, body, traceparent FROM outbox WHERE topic = ? AND id > ?"
                " AND refused_at IS NULL ORDER BY id LIMIT ?",
                (topic, after_id, limit),
            ).fetchall()
        )

    async def claim(self, topic: str, after_id: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        """On a shared journal: claims, for CLAIM_LEASE_SECONDS, the topic's next rows to send, oldest
        first, (id, key, body, traceparent): the rows this replica holds since it wrote them, after
        after_id (its last page's last row: this process's commits are one at a time, so its own rows
        commit in id order and none is left behind), and rows free or whose lease lapsed, wherever
        they are. Rows other replicas claim at the same moment are skipped, not waited for. A row is
        claimable only once no earlier row of its payment waits in the topic (that row's peer answered
        and it was deleted): a payment's reversal never overtakes its result, whoever holds them."""
        # Two index ranges, not a walk past the rows held in flight (schema 0003's indexes): this
        # replica's rows after its cursor, and the rows free or lapsed (the longest lapsed first: in
        # the order of their index, so it is the one the planner takes). Only the second need the order
        # rule: a row held since it was written is a payment's first result, with nothing before it.
        rows = await self._store.run(lambda c: c.execute(
            "WITH own AS (SELECT id FROM outbox WHERE topic = ? AND refused_at IS NULL AND id > ? AND claimed_by = ?"
            " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED),"
            " lapsed AS (SELECT id FROM outbox WHERE topic = ? AND refused_at IS NULL AND claimed_until < now()"
            " AND id = (SELECT min(e.id) FROM outbox e WHERE e.topic || ' ' || e.payment_id"
            " = outbox.topic || ' ' || outbox.payment_id AND e.refused_at IS NULL)"
            " ORDER BY claimed_until, id LIMIT ? FOR UPDATE SKIP LOCKED),"
            " page AS (SELECT id FROM own UNION SELECT id FROM lapsed ORDER BY id LIMIT ?)"
            " UPDATE outbox SET claimed_by = ?, claimed_until = now() + make_interval(secs => ?) FROM page"
            " WHERE outbox.id = page.id RETURNING outbox.id, outbox.item_key, outbox.body, outbox.traceparent",
            (topic, after_id, self.claimant, limit, topic, limit, limit, self.claimant, CLAIM_LEASE_SECONDS)
        ).fetchall())
        return sorted(rows)  # (an UPDATE's RETURNING keeps no order)

    async def renew(self, ids: list[int]) -> None:
        """Extends this replica's claims on these rows (sent, their peer's answer awaited) by a lease.
        A row being deleted meanwhile is skipped, not waited for."""
        await self._store.run(lambda c: c.execute(
            "UPDATE outbox SET claimed_until = now() + make_interval(secs => ?) WHERE id IN"
            " (SELECT id FROM outbox WHERE id = ANY(?) AND claimed_by = ? FOR UPDATE SKIP LOCKED)",
            (CLAIM_LEASE_SECONDS, ids, self.claimant)))

    async def release(self) -> None:
        """Gives up this replica's claims (it is stopping): any replica may take those rows at once,
        rather than once the lease lapses. A row whose answer was still due may so go out twice."""
        await self._store.run(lambda c: c.execute(
            "UPDATE outbox SET claimed_until = '-infinity' WHERE claimed_by = ? AND refused_at IS NULL",
            (self.claimant,)))

    async def undelivered(self) -> int:
        """Outbox rows still to be acknowledged by their peer (refused rows wait for an operator instead);
        on a shared journal, those this replica holds: the others' are theirs to send."""
        if self.shared:
            return await self._store.run(lambda c: c.execute(
                "SELECT count(*) FROM outbox WHERE refused_at IS NULL AND claimed_by = ?",
                (self.claimant,)).fetchone()[0])
        return await self._store.run(
            lambda c: c.execute("SELECT count(*) FROM outbox WHERE refused_at IS NULL").fetchone()[0])

    async def outbox_figures(self) -> list[tuple[str, int, float]]:
        """(topic, rows waiting for their peer, when the oldest was written) of each topic with rows."""
        # On the store's reader: with a backlog of 50,000 rows this takes some 30 ms (bench/bench_metrics_sample.py),
        # which the journal's commits, an online payment's among them, do not wait for.
        return await self._store.read(lambda c: c.execute(
            "SELECT topic, count(*), min(queued_at) FROM outbox WHERE refused_at IS NULL GROUP BY topic").fetchall())

    async def refuse(self, topic: str, refusals: list[tuple[str, int, str]]) -> None:
        """Marks rows (key, reason, message) their peer refused: kept, no longer forwarded."""
        now = time.time()
        await self._store.transaction(lambda c: c.executemany(
            "UPDATE outbox SET refused_at = ?, refused_reason = ?, refused_message = ? "
            "WHERE topic = ? AND item_key = ?",
            [(now, reason, message, topic, key) for key, reason, message in refusals]))

    async def refused(self) -> list[tuple[str, str, bytes, int, str, float]]:
        """(topic, key, body, reason, message, refused at) of every refused row, oldest first."""
        return await self._store.run(lambda c: c.execute(
            "SELECT topic, item_key, body, refused_reason, refused_message, refused_at FROM outbox"
            " WHERE refused_at IS NOT NULL ORDER BY id").fetchall())

    async def replay_refused(self, keys: list[tuple[str, str]] | None) -> int:
        """Puts refused rows (topic, key), or all of them when keys is None, back at the end of the
        outbox, in their order, for the forwarders to send again; how many."""
        return await self._store.transaction(_replay_refused, keys)

    async def record_batch_lines(self, channel: int, batch_id: str,
                                 lines: list[tuple[int, payments_pb2.Payment, bool]]) -> None:
        """Keeps each line's result (line number, payment, journaled?) for ListBatchResults."""
        rows = [(channel, batch_id, number, payment.payment_id if journaled else None,
                 None if journaled else payment.SerializeToString()) for number, payment, journaled in lines]
        await self._store.transaction(lambda c: c.executemany(
            "INSERT INTO batch_line (channel, batch_id, line_number, payment_id, refusal) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, batch_id, line_number) DO UPDATE SET payment_id = excluded.payment_id,"
            " refusal = excluded.refusal", rows))

    async def batch_results(self, channel: int, batch_id: str, after_line: int, limit: int
                            ) -> list[tuple[int, payments_pb2.Payment]]:
        """(line number, payment) of the channel's file, lines after after_line, in order, at most limit."""
        rows = await self._store.run(lambda c: c.execute(
            BATCH_RESULTS_BY_KEY if isinstance(c, PostgresConnection) else BATCH_RESULTS,
            (channel, batch_id, after_line, limit)).fetchall())
        return [(row[0], _line_result(*row[1:])) for row in rows]

    async def day_payments(self, business_date: str) -> list[payments_pb2.Payment]:
        """Payments booked on the date, and payments whose reversal was booked on it."""
        rows = await self._store.run(lambda c: c.execute(
            "SELECT payment, confirmation_sequence FROM payment WHERE business_date = ?"
            " UNION ALL SELECT payment, confirmation_sequence FROM payment WHERE reversal_date = ?"
            " AND business_date != ?", (business_date, business_date, business_date)).fetchall())
        return [_payment_of(*row) for row in rows]

    async def get(self, payment_id: str) -> payments_pb2.Payment | None:
        row = await self._store.run(
            lambda c: c.execute(
                GET_BY_KEY if isinstance(c, PostgresConnection) else
                "SELECT payment, confirmation_sequence FROM payment WHERE payment_id = ?", (payment_id,)
            ).fetchone()
        )
        return _payment_of(*row) if row else None

    async def unanswered(self) -> list[payments_pb2.Payment]:
        """Payments sent (or about to be sent) to a core with no result yet, oldest first."""
        rows = await self._store.run(
            lambda c: c.execute("SELECT payment FROM payment WHERE status = ? ORDER BY rowid", (ACCEPTED,)).fetchall()
        )
        return [payments_pb2.Payment.FromString(r[0]) for r in rows]

    async def drop_day(self, business_date: str, keys_kept_from: str) -> types_pb2.DroppedBusinessDay:
        """Drops the day's payments (an archived, closed day), keeping their keys; forgets the keys of
        days before keys_kept_from. One transaction; raises Refused while the day has work pending."""
        return await self._store.transaction(_drop_day, business_date, keys_kept_from)

    async def day_totals(self, business_date: str) -> list[tuple[int, int, int, str, int, int]]:
        """(channel, loan type, status, currency, count, amount) of the day's payments, for reconciliation."""
        return await self._store.run(
            lambda c: c.execute(
                # (PostgreSQL's sum of BIGINT is NUMERIC: cast back to an integer of minor units.)
                "SELECT channel, loan_type, status, currency, count(*), CAST(sum(amount_minor) AS BIGINT) FROM payment "
                "WHERE business_date = ? GROUP BY channel, loan_type, status, currency ORDER BY 1, 2, 3, 4",
                (business_date,),
            ).fetchall()
        )


def _weight(op) -> int:
    """Payments an operation writes: an accept's entries, a record's one."""
    kind, args = op
    return len(args[0]) if kind == "accept" else 1


def _apply_group(connection: Connection, ops) -> list:
    """Per operation, in order: an accept's outcomes; a record's Recorded. On PostgreSQL pipelined: a
    record's statements go out without waiting for their answers, an accept waits for its insert's;
    first, the partition of each day the accepts book in, where this connection has not seen it made."""
    results: list = []
    if isinstance(connection, PostgresConnection):
        # (A kept key is found by the accept's claim itself: nothing to look at first.)
        archived_any = False
        ensure_day_partitions_cached(connection, "payment", {
            entry.payment.business_date for op, args in ops if op == "accept" for entry in args[0]})
    else:
        # Most days no day has been dropped: then a new payment costs no look among the kept keys. Asked of
        # the store, not remembered: another router replica may drop a day meanwhile.
        archived_any = any(op == "accept" for op, _ in ops) and \
            connection.execute("SELECT 1 FROM archived_payment LIMIT 1").fetchone() is not None
    with pipelined(connection):
        for op, args in ops:
            if op == "accept":
                results.append([_accept(connection, entry, archived_any) for entry in args[0]])
            else:
                results.append(_record(connection, *args))
    return results


def _accept(connection: Connection, entry: Accepted, archived_any: bool) -> Outcome:
    p = entry.payment
    if archived_any:
        archived = _archived(connection, p)
        if archived:
            return archived
    # The insert first: a payment is new far more often than it is a retry, and a retry that reached
    # another router replica meanwhile (PostgreSQL: this insert waits for its commit) finds its row.
    partitioned = isinstance(connection, PostgresConnection)
    inserted = connection.execute(
        INSERT_PAYMENT_CLAIMING_KEY if partitioned else INSERT_PAYMENT,
        (p.payment_id, p.channel, p.idempotency_key, entry.body_hash, p.loan_type, p.amount.currency_code,
         p.amount.amount_minor, p.business_date, p.status, entry.batch_id or None, p.SerializeToString(),
         p.value_date),
    ).fetchone()
    if inserted:
        return Outcome(p, entry.body_hash, new=True)
    known = _known_by_key(connection, p) if partitioned else _journaled(connection, p)
    assert known is not None, "a conflicting insert leaves the row it conflicted with"
    return known


def _journaled(connection: Connection, p: payments_pb2.Payment) -> Outcome | None:
    """The payment already journaled under p's id, or None."""
    row = connection.execute(
        "SELECT payment, confirmation_sequence, body_hash FROM payment WHERE payment_id = ?", (p.payment_id,)
    ).fetchone()
    return Outcome(_payment_of(row[0], row[1]), row[2], new=False) if row else None


def _known_by_key(connection: Connection, p: payments_pb2.Payment) -> Outcome | None:
    """PostgreSQL's _journaled and _archived at once: what payment_key says of p's id, or None."""
    row = connection.execute(KNOWN_BY_KEY, (p.payment_id,)).fetchone()
    if row is None:
        return None
    blob, sequence, body_hash, archived_body_hash, business_date, archived_status = row
    if archived_status is not None:
        return _archived_outcome(p, archived_body_hash, business_date, archived_status)
    return Outcome(_payment_of(blob, sequence), body_hash, new=False)


def _archived(connection: Connection, p: payments_pb2.Payment) -> Outcome | None:
    """The key a dropped day left of p's id: its day and final status, or None."""
    archived = connection.execute("SELECT body_hash, business_date, status FROM archived_payment"
                                  " WHERE payment_id = ?", (p.payment_id,)).fetchone()
    return None if archived is None else _archived_outcome(p, *archived)


def _archived_outcome(p: payments_pb2.Payment, body_hash: str, business_date: str,
                      status: types_pb2.PaymentStatus) -> Outcome:
    payment = payments_pb2.Payment(payment_id=p.payment_id, channel=p.channel, idempotency_key=p.idempotency_key,
                                   business_date=business_date, status=status)
    return Outcome(payment, body_hash, new=False, archived=True)


def _record(connection: Connection, payment: payments_pb2.Payment, outbox, claimant: str) -> Recorded:
    # By its day too (never changed: the payment was accepted with it): on PostgreSQL, its partition.
    connection.execute(
        "UPDATE payment SET status = ?, payment = ?, reversal_date = ? WHERE business_date = ? AND payment_id = ?",
        (payment.status, payment.SerializeToString(), payment.reversal_business_date or None, payment.business_date,
         payment.payment_id),
    )
    now = time.time()  # when the rows were written: the oldest row's age is a gauge
    if claimant:  # a shared journal's rows, held by the replica that wrote them (Journal.claim)
        connection.executemany(
            "INSERT INTO outbox (topic, item_key, body, traceparent, queued_at, claimed_by, claimed_until)"
            " VALUES (?, ?, ?, ?, ?, ?, now() + make_interval(secs => ?)) ON CONFLICT (topic, item_key) DO NOTHING",
            [(*row, now, claimant, CLAIM_LEASE_SECONDS) for row in outbox])
        return Recorded()
    if isinstance(connection, PostgresConnection):  # (a correction, hold=False: claimed from the table)
        connection.executemany(INSERT_OUTBOX, [(*row, now) for row in outbox])
        return Recorded()
    # Each row's id, for the forwarders; none for a row kept before (a result recorded twice).
    recorded = Recorded()
    for topic, key, body, traceparent in outbox:
        inserted = connection.execute(f"{INSERT_OUTBOX} RETURNING id", (topic, key, body, traceparent, now)).fetchone()
        if inserted:
            recorded.rows.append((topic, (inserted[0], key, body, traceparent)))
    return recorded


def _delivered(connection: Connection, delivered) -> None:
    for topic, keys, sequences in delivered:
        connection.executemany("DELETE FROM outbox WHERE topic = ? AND item_key = ?", [(topic, k) for k in keys])
        connection.executemany(SET_CONFIRMATION_SEQUENCE_BY_KEY if isinstance(connection, PostgresConnection)
                               else SET_CONFIRMATION_SEQUENCE,
                               [(sequence, payment_id) for payment_id, sequence in sequences.items()])


def _replay_refused(connection: Connection, keys: list[tuple[str, str]] | None) -> int:
    # A new row id puts it behind the forwarders' cursor, which only moves forward.
    rows = connection.execute(
        "SELECT id, topic, item_key, body, traceparent FROM outbox WHERE refused_at IS NOT NULL ORDER BY id").fetchall()
    wanted = None if keys is None else set(keys)
    rows = [row for row in rows if wanted is None or (row[1], row[2]) in wanted]
    connection.executemany("DELETE FROM outbox WHERE id = ?", [(row[0],) for row in rows])
    now = time.time()
    connection.executemany("INSERT INTO outbox (topic, item_key, body, traceparent, queued_at) VALUES (?, ?, ?, ?, ?)",
                           [(*row[1:], now) for row in rows])
    return len(rows)


def _drop_day(connection: Connection, business_date: str, keys_kept_from: str) -> types_pb2.DroppedBusinessDay:
    before = bytes_in_use(connection)
    (unanswered,) = connection.execute("SELECT count(*) FROM payment WHERE business_date = ? AND status = ?",
                                       (business_date, ACCEPTED)).fetchone()
    if unanswered:
        raise not_final(f"{unanswered} payments of {business_date} still wait for their core's answer")
    of_day = {row[0] for row in connection.execute(
        "SELECT payment_id FROM payment WHERE business_date = ? OR reversal_date = ?", (business_date, business_date))}
    # The outbox is small (rows wait only until their peer's answer): read it whole.
    waiting = sum(1 for topic, key, body in connection.execute("SELECT topic, item_key, body FROM outbox")
                  if outbox_payment_id(topic, key, body) in of_day)
    if waiting:
        raise not_final(f"{waiting} outbox rows of {business_date}'s payments are not delivered yet"
                        " (refused ones: paymesh outbox list)")
    connection.execute("INSERT INTO dropped_day (business_date) VALUES (?) ON CONFLICT DO NOTHING", (business_date,))
    rows = connection.execute(f"SELECT payment_id, body_hash, business_date, status, channel, batch_id FROM payment p"
                              f" WHERE {GOES_WITH_DAY}", (business_date, business_date)).fetchall()
    if isinstance(connection, PostgresConnection):
        _drop_partition(connection, business_date, rows)
    else:
        connection.executemany("INSERT INTO archived_payment (payment_id, body_hash, business_date, status)"
                               " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", [row[:4] for row in rows])
        connection.executemany("DELETE FROM payment WHERE payment_id = ?", [(row[0],) for row in rows])
    # A day file's line results go with the last of its payments (a file can span two days).
    for channel, batch_id in {(row[4], row[5]) for row in rows if row[5]}:
        if connection.execute("SELECT 1 FROM payment WHERE channel = ? AND batch_id = ? LIMIT 1",
                              (channel, batch_id)).fetchone() is None:
            connection.execute("DELETE FROM batch_line WHERE channel = ? AND batch_id = ?", (channel, batch_id))
    forgotten = connection.execute(
        "DELETE FROM payment_key WHERE status IS NOT NULL AND business_date < ?" if isinstance(
            connection, PostgresConnection) else "DELETE FROM archived_payment WHERE business_date < ?",
        (keys_kept_from,)).rowcount
    return types_pb2.DroppedBusinessDay(
        business_date=business_date, dropped_count=len(rows), kept_key_count=len(rows), forgotten_key_count=forgotten,
        store_bytes_before=before, store_bytes_after=bytes_in_use(connection))


def _drop_partition(connection: PostgresConnection, business_date: str, rows: list) -> None:
    """PostgreSQL's drop of the day's payments (rows): its partition goes whole, its space given back at
    once, but for the payments reversed on a day not dropped yet, kept in a new small partition of the
    day (paymesh.postgres.drop_day_partition); an earlier day's payment reversed on this one goes from
    what that day's drop kept, and that day's partition with its last. Each key of the payments that go
    keeps its body hash and final status: what the same key sent again is answered with.
    (The detach waits for the replicas' commits writing payments; one of those waiting in turn for a key
    this drop holds, a retry of the day's, is a deadlock PostgreSQL ends: either is run again whole.)"""
    connection.execute("UPDATE payment_key k SET body_hash = p.body_hash, status = p.status FROM payment p"
                       f" WHERE p.business_date = k.business_date AND p.payment_id = k.payment_id AND {GOES_WITH_DAY}",
                       (business_date, business_date))
    if connection.execute(f"SELECT 1 FROM payment WHERE business_date = ? AND {STAYS_AFTER_ITS_DAY} LIMIT 1",
                          (business_date,)).fetchone():
        drop_day_partition(connection, "payment", business_date, keep_where=STAYS_AFTER_ITS_DAY)
    else:
        drop_day_partition(connection, "payment", business_date)
    earlier = [(row[2], row[0]) for row in rows if row[2] != business_date]
    connection.executemany("DELETE FROM payment WHERE business_date = ? AND payment_id = ?", earlier)
    for day in sorted({day for day, _ in earlier}):
        if connection.execute("SELECT 1 FROM payment WHERE business_date = ? LIMIT 1", (day,)).fetchone() is None:
            drop_day_partition(connection, "payment", day)


def outbox_payment_id(topic: str, key: str, body: bytes) -> str:
    """The payment an outbox row is of: a posting names it, a confirmation's key starts with it."""
    return ledger_pb2.Posting.FromString(body).payment_id if topic == POSTINGS else key.split(":")[0]


def _line_result(refusal: bytes | None, blob: bytes | None, sequence: int, payment_id: str,
                 archived_date: str | None, archived_status: types_pb2.PaymentStatus | None) -> payments_pb2.Payment:
    """A file line's result: the router's refusal, the journaled payment, or (its day dropped while a
    later day still holds the rest of the file) the archived payment's id, day and status."""
    if refusal is not None:
        return payments_pb2.Payment.FromString(refusal)
    if blob is not None:
        return _payment_of(blob, sequence)
    return payments_pb2.Payment(payment_id=payment_id, business_date=archived_date or "", status=archived_status)


def _payment_of(blob: bytes, confirmation_sequence: int) -> payments_pb2.Payment:
    payment = payments_pb2.Payment.FromString(blob)
    payment.confirmation_sequence = confirmation_sequence or payment.confirmation_sequence
    return payment
