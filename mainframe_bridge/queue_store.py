"""The bridge's durable queue of postings and its business days.

One SQL for both backends (paymesh.postgres): a SQLite file by default (mainframe-bridge.db,
SCHEMA below), or the bridge's own PostgreSQL database (the numbered files of
mainframe_bridge/schema/, POSTGRES_SCHEMA_DIR) when PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL or
PAYMESH_DATABASE_URL is set.

A posting row is written once, with the exact record frame the mainframe will
get, and then only changes status: QUEUED -> POSTED (or REJECTED by the
mainframe). Its seq is the order the mainframe sees and the order of the day's
end-of-day file. Every function here takes the connection and runs on the store's
thread, inside a transaction when it writes.

Why seq order is commit order on PostgreSQL too, where two bridge processes share the database
(active/standby): seq is drawn from the table's sequence (postings_order) inside the writing transaction,
and only one transaction draws at a time. The lease holder alone writes: each of its transactions
begins with the lease's fence (paymesh.lease.FencedStore), so a standby's or a deposed holder's
fails before it inserts anything, and a takeover waits for the old holder's fenced transactions to
end, so every number the old holder drew is committed (or rolled back, leaving a gap) before the
new holder draws one. Within the holder every write runs on the store's one connection, one
transaction after another (the group commits of PostEntries and of the mainframe's answers
included). So no posting commits with a lower seq than one already committed, and the
forwarder's cursor (seq > the last sent) never passes one by.

A business day closes in three steps: CLOSING (the routers move new payments to the
next day; postings of the day still come in), SEALED (the day takes no more: a posting
of it that still arrives is booked in the next open day, with its original date kept,
as a late item) and CLOSED (the end-of-day file accepted by the mainframe). Nothing is
ever refused because its day closed.
"""

import datetime as dt
import logging
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import ledger_pb2
from mainframe_bridge import records
from paymesh import telemetry
from paymesh.business_calendar import BusinessCalendar
from paymesh.lease import FencedStore
from paymesh.postgres import (PostgresConnection, PostgresStore, bytes_in_use, drop_day_partition,
                              ensure_day_partitions_cached)
from paymesh.retention import not_final
from paymesh.sqlite import Store, rows_with_ids

QUEUED, POSTED, REJECTED = ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED, \
    ledger_pb2.POSTING_STATUS_REJECTED
CLOSING, SEALED, CLOSED = "CLOSING", "SEALED", "CLOSED"
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- the order postings go to the mainframe
    posting_id TEXT NOT NULL UNIQUE,
    business_date TEXT NOT NULL,             -- the day it is booked in at the mainframe
    channel INTEGER NOT NULL,
    loan_type INTEGER NOT NULL,
    reversal INTEGER NOT NULL,               -- 1 when it credits the channel's clearing account
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,                 -- sum of debits = sum of credits, minor units
    digest BLOB NOT NULL,                    -- tells a replay from a reused id
    frame BLOB NOT NULL,                     -- the EBCDIC record, sent as is
    status INTEGER NOT NULL,
    reference TEXT NOT NULL DEFAULT '',
    rejection_reason INTEGER NOT NULL DEFAULT 0,
    rejection_message TEXT NOT NULL DEFAULT '',
    queued_at REAL NOT NULL,
    posted_at REAL,
    original_date TEXT NOT NULL DEFAULT ''   -- the day its core gave it, when its day was sealed before it came
);
CREATE INDEX IF NOT EXISTS postings_queued ON postings (seq) WHERE status = 1;
CREATE INDEX IF NOT EXISTS postings_by_date ON postings (business_date, status);
CREATE TABLE IF NOT EXISTS business_days (
    business_date TEXT PRIMARY KEY,
    state TEXT NOT NULL,                     -- CLOSING, SEALED (no new postings) or CLOSED (file accepted)
    result BLOB,                             -- the CloseBusinessDayResponse, once CLOSED
    closing_since REAL,                      -- when the close began
    file_created TEXT,                       -- the end-of-day file's creation time (ISO, with its zone), once built
    file_sequence INTEGER                    -- and its number in the sequence of files
);
-- What a dropped (archived) day leaves of each posting: its id, digest and standing, for
-- paymesh.retention's time, so a posting sent again is answered where it stood, never posted twice.
CREATE TABLE IF NOT EXISTS archived_posting (
    posting_id TEXT PRIMARY KEY,
    business_date TEXT NOT NULL,
    digest BLOB NOT NULL,
    status INTEGER NOT NULL,
    reference TEXT NOT NULL,
    rejection_reason INTEGER NOT NULL,
    rejection_message TEXT NOT NULL,
    queued_at REAL,
    posted_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS archived_posting_by_day ON archived_posting (business_date);
"""
ADDED_COLUMNS = {"postings": {"original_date": "TEXT NOT NULL DEFAULT ''"},
                 "business_days": {"closing_since": "REAL", "file_created": "TEXT", "file_sequence": "INTEGER"}}
INDEXES = "CREATE INDEX IF NOT EXISTS postings_late ON postings (original_date) WHERE original_date != '';"
# The PostgreSQL schema: the same tables, as numbered migrations (paymesh.postgres.migrate).
POSTGRES_SCHEMA_DIR = Path(__file__).parent / "schema"
# Where the queue is: a SQLite file, or a PostgreSQL database (fenced by the bridge's lease when served).
QueueStore = Store | PostgresStore | FencedStore


# Named tuples rather than frozen dataclasses: as immutable, and cheaper to make (one or more per posting).
class Queued(NamedTuple):
    """A validated posting ready to be stored."""

    posting_id: str
    business_date: str
    channel: int
    loan_type: int
    reversal: bool
    currency: str
    amount: int
    digest: bytes
    frame: bytes


class Standing(NamedTuple):
    """Where a posting stands, as an ack or a status lookup reports it."""

    status: ledger_pb2.PostingStatus
    reference: str = ""
    rejection_reason: errors_pb2.ErrorReason = errors_pb2.ERROR_REASON_UNSPECIFIED
    rejection_message: str = ""
    queued_at: float | None = None
    posted_at: float | None = None


class EarlierMessageLost(Exception):
    """A stream's message not stored because the one before it was not (its transaction failed):
    storing it would queue its postings ahead of the earlier ones, which the router sends again."""


def enqueue(connection: sqlite3.Connection, items: list[Queued], calendar: BusinessCalendar,
            after: str | None = None) -> list[Standing]:
    """Stores each new posting as QUEUED; a posting id seen before answers where it stands. A posting
    of a sealed day is booked in the next open day (calendar), keeping its own date as original_date.
    after: the last posting of the stream's message before this one, if that one had any to store;
    unless it is queued (its transaction committed), EarlierMessageLost and nothing is written, so a
    stream's postings are queued in the order sent even when a commit fails under messages in flight."""
    (sealed_through,) = connection.execute(
        "SELECT max(business_date) FROM business_days WHERE state != ?", (CLOSING,)).fetchone()
    booked_on = {item.business_date: _booked_date(item.business_date, sealed_through, calendar) for item in items}
    # First in the transaction (before postings is read): the partitions of the days it writes, on PostgreSQL.
    ensure_day_partitions_cached(connection, "postings", booked_on.values())
    if after is not None and _standing_of(connection, after) is None:
        raise EarlierMessageLost(f"posting {after}, of the stream's message before, was not stored")
    now = time.time()
    queued = Standing(QUEUED, queued_at=now)  # (immutable: one for every posting queued now)
    # Every id is looked up before any is inserted, and an id twice in the batch is answered from here.
    # On PostgreSQL this lookup alone keeps a posting id once: a partitioned table's unique keys must
    # hold business_date, and a posting sent again after its day was sealed is booked in another day.
    # It is as strict as the UNIQUE was: only the lease holder inserts postings, in a fenced transaction,
    # one transaction at a time on its store's one connection, and a takeover waits for the deposed
    # holder's to end. So no insert of the same id runs beside this one, and every earlier one is
    # committed and seen here (READ COMMITTED: a statement sees what was committed before it began).
    known = _known_of(connection, [item.posting_id for item in items])
    answers, rows = [], []
    for item in items:
        found = known.get(item.posting_id)
        if found is not None:
            digest, where = found
            if digest != item.digest:
                answers.append(Standing(
                    REJECTED, rejection_reason=errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                    rejection_message=f"posting {item.posting_id} was queued before with different content"))
            else:
                answers.append(where)
            continue
        booked, frame, original = booked_on[item.business_date], item.frame, ""
        if booked != item.business_date:
            frame, original = _book_late(item, booked), item.business_date
        rows.append((item.posting_id, booked, item.channel, item.loan_type, int(item.reversal),
                     item.currency, item.amount, item.digest, frame, QUEUED, now, original))
        known[item.posting_id] = (item.digest, queued)  # twice in this batch: where its row (not written yet) stands
        answers.append(queued)
    # One statement for the batch, in order: seq is the order the mainframe sees.
    connection.executemany(
        "INSERT INTO postings (posting_id, business_date, channel, loan_type, reversal, currency, amount,"
        " digest, frame, status, queued_at, original_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    late = sum(1 for row in rows if row[-1])
    if late:
        telemetry.count_late_postings(late)
    return answers


def _booked_date(business_date: str, sealed_through: str | None, calendar: BusinessCalendar) -> str:
    """The day a posting of business_date is booked in: its own, or the next open day once its day is sealed."""
    if sealed_through is None or business_date > sealed_through:
        return business_date
    return calendar.next_business_day(dt.date.fromisoformat(sealed_through)).isoformat()


def _book_late(item: Queued, booked: str) -> bytes:
    """The frame of a posting whose day was sealed before it came, booked in the next open day."""
    record = records.decode_posting(item.frame)
    log.warning("posting of a sealed business day booked in the next open day (a late item)",
                extra={"posting_id": item.posting_id, "original_date": item.business_date, "booked": booked})
    return records.encode_posting(record._replace(business_date=records.date_number(booked)))


_STANDING = "status, reference, rejection_reason, rejection_message, queued_at, posted_at"


def _known_of(connection: sqlite3.Connection, posting_ids: list[str]) -> dict[str, tuple[bytes, Standing]]:
    """The digest and standing of each posting id already queued (or kept from a dropped day), in a
    few statements for the batch: a router resending a stream after a takeover sends thousands."""
    known = {row[0]: (row[1], Standing(*row[2:])) for row in rows_with_ids(
        connection, f"SELECT posting_id, digest, {_STANDING} FROM postings WHERE posting_id IN ({{}})", posting_ids)}
    if _any_archived(connection):
        known.update((row[0], (row[1], Standing(*row[2:]))) for row in rows_with_ids(
            connection, f"SELECT posting_id, digest, {_STANDING} FROM archived_posting WHERE posting_id IN ({{}})",
            [p for p in posting_ids if p not in known]))
    return known


def _any_archived(connection: sqlite3.Connection) -> bool:
    # Most days nothing is archived yet: then a posting costs no second lookup.
    return connection.execute("SELECT 1 FROM archived_posting LIMIT 1").fetchone() is not None


def standing(connection: sqlite3.Connection, posting_id: str) -> Standing | None:
    return _standing_of(connection, posting_id)


def _standing_of(connection: sqlite3.Connection, posting_id: str) -> Standing | None:
    row = connection.execute(
        f"SELECT {_STANDING} FROM postings WHERE posting_id = ?", (posting_id,)).fetchone() or connection.execute(
        f"SELECT {_STANDING} FROM archived_posting WHERE posting_id = ?", (posting_id,)).fetchone()
    return Standing(*row) if row else None


def next_queued(connection: sqlite3.Connection, after_seq: int, limit: int) -> list[tuple[int, str, bytes]]:
    """(seq, posting id, frame) of QUEUED postings after after_seq, in order."""
    return connection.execute(
        "SELECT seq, posting_id, frame FROM postings WHERE status = 1 AND seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit)).fetchall()


def settle(connection: sqlite3.Connection, outcomes: list[tuple[int, Standing]]) -> None:
    """Records the mainframe's answers, by seq (only for postings still QUEUED: an answer is final)."""
    now = time.time()
    connection.executemany(
        "UPDATE postings SET status = ?, reference = ?, rejection_reason = ?, rejection_message = ?,"
        " posted_at = ? WHERE seq = ? AND status = 1",
        [(s.status, s.reference, s.rejection_reason, s.rejection_message, now, seq) for seq, s in outcomes],
    )


def summary(connection: sqlite3.Connection, business_date: str) -> list[tuple]:
    """(channel, loan type, reversal, status, currency, count, amount) for the date."""
    return connection.execute(
        # sum() of a BIGINT is a NUMERIC on PostgreSQL: cast back to an integer, as SQLite's is.
        "SELECT channel, loan_type, reversal, status, currency, COUNT(*), CAST(SUM(amount) AS BIGINT) FROM postings"
        " WHERE business_date = ? GROUP BY channel, loan_type, reversal, status, currency"
        " ORDER BY channel, loan_type, reversal, status, currency", (business_date,)).fetchall()


def begin_close(connection: sqlite3.Connection, business_date: str) -> tuple[str, bytes | None, float]:
    """Marks the day CLOSING if it is not yet; (its state, the stored result once CLOSED, since when it closes)."""
    row = connection.execute(
        "SELECT state, result, closing_since FROM business_days WHERE business_date = ?", (business_date,)).fetchone()
    if row:
        return row[0], row[1], row[2] or 0.0
    now = time.time()
    connection.execute("INSERT INTO business_days (business_date, state, closing_since) VALUES (?, ?, ?)",
                       (business_date, CLOSING, now))
    return CLOSING, None, now


def last_posting_at(connection: sqlite3.Connection, business_date: str) -> float:
    """When the day's latest posting was queued (0 if none)."""
    (at,) = connection.execute("SELECT max(queued_at) FROM postings WHERE business_date = ?",
                               (business_date,)).fetchone()
    return at or 0.0


def seal(connection: sqlite3.Connection, business_date: str) -> None:
    """From now on the day takes no posting: what still comes is booked in the next open day."""
    connection.execute("UPDATE business_days SET state = ? WHERE business_date = ? AND state = ?",
                       (SEALED, business_date, CLOSING))


def waiting_for_mainframe(connection: sqlite3.Connection, business_date: str) -> int:
    (waiting,) = connection.execute(
        "SELECT COUNT(*) FROM postings WHERE business_date = ? AND status = 1", (business_date,)).fetchone()
    return waiting


def closed_day_count(connection: sqlite3.Connection) -> int:
    """How many days were closed (their files accepted): the next file's sequence is one more."""
    return connection.execute("SELECT COUNT(*) FROM business_days WHERE state = ?", (CLOSED,)).fetchone()[0]


def last_closed(connection: sqlite3.Connection) -> tuple[str, bool]:
    """(the latest day closing, sealed or closed, whether its file is accepted); ("", False) if none."""
    row = connection.execute(
        "SELECT business_date, state FROM business_days ORDER BY business_date DESC LIMIT 1").fetchone()
    return (row[0], row[1] == CLOSED) if row else ("", False)


def day_postings(connection: sqlite3.Connection, business_date: str) -> list[tuple[bytes, int, str, str, str]]:
    """(frame, status, booked date, original date, mainframe reference) of the postings booked on the
    date and of the date's late items booked later, in queue order."""
    # Said (ORDER BY seq), not left to the plan: PostgreSQL's need not be SQLite's.
    return connection.execute(
        "SELECT frame, status, business_date, original_date, reference FROM ("
        "SELECT seq, frame, status, business_date, original_date, reference FROM postings WHERE business_date = ?"
        " UNION ALL SELECT seq, frame, status, business_date, original_date, reference FROM postings"
        " WHERE original_date = ? AND business_date != ?) AS day ORDER BY seq",
        (business_date, business_date, business_date)).fetchall()


def posted_frames(connection: sqlite3.Connection, business_date: str) -> list[bytes]:
    """The records of the day's POSTED postings, in the order they were sent."""
    rows = connection.execute(
        "SELECT frame FROM postings WHERE business_date = ? AND status = 2 ORDER BY seq", (business_date,))
    return [row[0] for row in rows]


def file_made(connection: sqlite3.Connection, business_date: str) -> tuple[str, int] | None:
    """(creation time, sequence number) of the day's end-of-day file, as the first process to build it kept them."""
    row = connection.execute("SELECT file_created, file_sequence FROM business_days WHERE business_date = ?"
                             " AND file_created IS NOT NULL", (business_date,)).fetchone()
    return (row[0], row[1]) if row else None


def keep_file_made(connection: sqlite3.Connection, business_date: str, created: str, sequence: int
                   ) -> tuple[str, int]:
    """Keeps the file's creation time and sequence number unless some process kept them first; what
    stands. The rest of the file is the day's posted postings, fixed once the day is sealed and posted,
    so whichever process builds it again (another holder of the lease, with a folder of its own)
    builds the same bytes, and the mainframe answers them as the first time."""
    connection.execute("UPDATE business_days SET file_created = ?, file_sequence = ? WHERE business_date = ?"
                       " AND file_created IS NULL", (created, sequence, business_date))
    return file_made(connection, business_date) or (created, sequence)  # (no row: a day never begun closing)


def finish_close(connection: sqlite3.Connection, business_date: str, result: bytes) -> None:
    connection.execute(
        "UPDATE business_days SET state = ?, result = ? WHERE business_date = ?", (CLOSED, result, business_date))


def day_closed(connection: sqlite3.Connection, business_date: str) -> bool:
    return connection.execute("SELECT 1 FROM business_days WHERE business_date = ? AND state = ?",
                              (business_date, CLOSED)).fetchone() is not None


def drop_day(connection: sqlite3.Connection, business_date: str, keys_kept_from: str
             ) -> types_pb2.DroppedBusinessDay:
    """Drops a closed day's postings, keeping each one's id, digest and standing; forgets those of days
    before keys_kept_from. Raises Refused if the day is not closed."""
    if not day_closed(connection, business_date):
        raise not_final(f"{business_date} is not closed at the ledger (its end-of-day file not accepted):"
                        " close it, reconcile and archive it first")
    before = bytes_in_use(connection)
    # (An upsert both backends speak; the SELECT's WHERE tells SQLite's parser the ON CONFLICT is the insert's.)
    dropped = connection.execute(
        "INSERT INTO archived_posting (posting_id, business_date, digest, status, reference, rejection_reason,"
        " rejection_message, queued_at, posted_at) SELECT posting_id, business_date, digest, status, reference,"
        " rejection_reason, rejection_message, queued_at, posted_at FROM postings WHERE business_date = ?"
        " ON CONFLICT (posting_id) DO UPDATE SET business_date = excluded.business_date, digest = excluded.digest,"
        " status = excluded.status, reference = excluded.reference, rejection_reason = excluded.rejection_reason,"
        " rejection_message = excluded.rejection_message, queued_at = excluded.queued_at,"
        " posted_at = excluded.posted_at", (business_date,)).rowcount
    if isinstance(connection, PostgresConnection):
        # The day's partition dropped, its space given back at once (a DELETE's waits for a vacuum to be
        # reused). Nothing of it is kept: a closed day has no posting left QUEUED (the close waits for the
        # mainframe's answer to each), its late items are booked in a later day's partition, and each
        # posting's id, digest and standing were just kept in archived_posting.
        drop_day_partition(connection, "postings", business_date)
    else:
        connection.execute("DELETE FROM postings WHERE business_date = ?", (business_date,))
    forgotten = connection.execute("DELETE FROM archived_posting WHERE business_date < ?", (keys_kept_from,)).rowcount
    return types_pb2.DroppedBusinessDay(
        business_date=business_date, dropped_count=dropped, kept_key_count=dropped, forgotten_key_count=forgotten,
        store_bytes_before=before, store_bytes_after=bytes_in_use(connection))


def queue_figures(connection: sqlite3.Connection) -> tuple[int, float | None]:
    """(postings QUEUED for the mainframe, when the oldest of them was queued): the partial index's rows."""
    # (named: the planner would rather count the whole of postings_by_date, every posting ever queued)
    indexed = " INDEXED BY postings_queued" if isinstance(connection, sqlite3.Connection) else ""  # SQLite's hint
    (count,) = connection.execute(f"SELECT count(*) FROM postings{indexed} WHERE status = 1").fetchone()
    oldest = connection.execute("SELECT queued_at FROM postings WHERE status = 1 ORDER BY seq LIMIT 1").fetchone()
    return count, oldest[0] if oldest else None


OPEN, DAY_CLOSING, DAY_CLOSED = "open", "closing", "closed"  # the day's state as the gauge names it


def day_to_close(connection: sqlite3.Connection, booking_today: str) -> tuple[str, str]:
    """(the business day an operator closes next, its state: open, closing, closed). The oldest day that is
    closing or has postings and is not closed; when every such day is closed, the last closed; with
    nothing at all, today's booking day, open. Index reads only (business_days is a row a day)."""
    (closing,) = connection.execute(
        "SELECT min(business_date) FROM business_days WHERE state != ?", (CLOSED,)).fetchone()
    (last_closed,) = connection.execute(
        "SELECT max(business_date) FROM business_days WHERE state = ?", (CLOSED,)).fetchone()
    (with_postings,) = connection.execute(
        "SELECT min(business_date) FROM postings WHERE business_date > ?", (last_closed or "",)).fetchone()
    candidates = [day for day in (closing, with_postings) if day]
    if candidates:
        day = min(candidates)
        return day, DAY_CLOSING if day == closing else OPEN
    if last_closed:
        return last_closed, DAY_CLOSED
    return booking_today, OPEN
