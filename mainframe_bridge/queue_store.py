"""The bridge's durable queue of postings (SQLite, mainframe-bridge.db).

A posting row is written once, with the exact record frame the mainframe will
get, and then only changes status: QUEUED -> POSTED (or REJECTED by the
mainframe). Its seq is the order the mainframe sees. Every function here takes
the connection and runs on the Store's thread, inside a transaction when it writes.
"""

import sqlite3
import time
from typing import NamedTuple

from bank.common.v1 import errors_pb2
from bank.ledger.v1 import ledger_pb2
from paymesh.sqlite import rows_with_ids

QUEUED, POSTED, REJECTED = ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED, \
    ledger_pb2.POSTING_STATUS_REJECTED
CLOSING, CLOSED = "CLOSING", "CLOSED"

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- the order postings go to the mainframe
    posting_id TEXT NOT NULL UNIQUE,
    business_date TEXT NOT NULL,
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
    posted_at REAL
);
CREATE INDEX IF NOT EXISTS postings_queued ON postings (seq) WHERE status = 1;
CREATE INDEX IF NOT EXISTS postings_by_date ON postings (business_date, status);
CREATE TABLE IF NOT EXISTS business_days (
    business_date TEXT PRIMARY KEY,
    state TEXT NOT NULL,                     -- CLOSING (no new postings) or CLOSED (file accepted)
    result BLOB                              -- the CloseBusinessDayResponse, once CLOSED
);
"""


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

    status: int
    reference: str = ""
    rejection_reason: int = 0
    rejection_message: str = ""
    queued_at: float | None = None
    posted_at: float | None = None


def enqueue(connection: sqlite3.Connection, items: list[Queued]) -> list[Standing]:
    """Stores each new posting as QUEUED; a posting id seen before answers where it stands."""
    now = time.time()
    queued = Standing(QUEUED, queued_at=now)  # (immutable: one for every posting queued now)
    digests = _digests_of(connection, [item.posting_id for item in items])
    queued_now: set[str] = set()
    closed_days: dict[str, bool] = {}
    answers, rows = [], []
    for item in items:
        digest = digests.get(item.posting_id)
        if digest is not None:
            if digest != item.digest:
                answers.append(Standing(
                    REJECTED, rejection_reason=errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                    rejection_message=f"posting {item.posting_id} was queued before with different content"))
            elif item.posting_id in queued_now:  # twice in this batch: where its row (not written yet) stands
                answers.append(queued)
            else:
                answers.append(_standing_of(connection, item.posting_id))
            continue
        if item.business_date not in closed_days:
            closed_days[item.business_date] = connection.execute(
                "SELECT 1 FROM business_days WHERE business_date = ?", (item.business_date,)).fetchone() is not None
        if closed_days[item.business_date]:
            answers.append(Standing(REJECTED, rejection_reason=errors_pb2.ERROR_REASON_BUSINESS_DAY_CLOSED,
                                    rejection_message=f"business day {item.business_date} is closed"))
            continue
        rows.append((item.posting_id, item.business_date, item.channel, item.loan_type, int(item.reversal),
                     item.currency, item.amount, item.digest, item.frame, QUEUED, now))
        digests[item.posting_id] = item.digest
        queued_now.add(item.posting_id)
        answers.append(queued)
    # One statement for the batch, in order: seq is the order the mainframe sees.
    connection.executemany(
        "INSERT INTO postings (posting_id, business_date, channel, loan_type, reversal, currency, amount,"
        " digest, frame, status, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return answers


def _digests_of(connection: sqlite3.Connection, posting_ids: list[str]) -> dict[str, bytes]:
    """The digest of each posting id already queued."""
    return dict(rows_with_ids(connection, "SELECT posting_id, digest FROM postings WHERE posting_id IN ({})",
                              posting_ids))


def standing(connection: sqlite3.Connection, posting_id: str) -> Standing | None:
    return _standing_of(connection, posting_id)


def _standing_of(connection: sqlite3.Connection, posting_id: str) -> Standing | None:
    row = connection.execute(
        "SELECT status, reference, rejection_reason, rejection_message, queued_at, posted_at FROM postings"
        " WHERE posting_id = ?", (posting_id,)).fetchone()
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
        "SELECT channel, loan_type, reversal, status, currency, COUNT(*), SUM(amount) FROM postings"
        " WHERE business_date = ? GROUP BY channel, loan_type, reversal, status, currency"
        " ORDER BY channel, loan_type, reversal, status, currency", (business_date,)).fetchall()


def begin_close(connection: sqlite3.Connection, business_date: str) -> tuple[bytes | None, int]:
    """Marks the day CLOSING (no new postings for it); returns (the stored result if already
    CLOSED, how many of its postings still wait for the mainframe)."""
    row = connection.execute(
        "SELECT state, result FROM business_days WHERE business_date = ?", (business_date,)).fetchone()
    if row and row[0] == CLOSED:
        return row[1], 0
    if not row:
        connection.execute("INSERT INTO business_days (business_date, state) VALUES (?, ?)", (business_date, CLOSING))
    (waiting,) = connection.execute(
        "SELECT COUNT(*) FROM postings WHERE business_date = ? AND status = 1", (business_date,)).fetchone()
    return None, waiting


def posted_frames(connection: sqlite3.Connection, business_date: str) -> list[bytes]:
    """The records of the day's POSTED postings, in the order they were sent."""
    rows = connection.execute(
        "SELECT frame FROM postings WHERE business_date = ? AND status = 2 ORDER BY seq", (business_date,))
    return [row[0] for row in rows]


def finish_close(connection: sqlite3.Connection, business_date: str, result: bytes) -> None:
    connection.execute(
        "UPDATE business_days SET state = ?, result = ? WHERE business_date = ?", (CLOSED, result, business_date))


def day_closed(connection: sqlite3.Connection, business_date: str) -> bool:
    return connection.execute("SELECT 1 FROM business_days WHERE business_date = ? AND state = ?",
                              (business_date, CLOSED)).fetchone() is not None
