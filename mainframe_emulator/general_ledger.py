"""The emulator's general ledger: a double-entry book in its own SQLite file.

Each posting is kept with the reply it got, so a replayed posting id is
answered exactly as the first time; a refused posting keeps its return code
and writes no entries. A day whose end-of-day file was accepted is closed: it
takes no new postings, and no other file; the same file again is answered as
the first time (the accepted file's digest tells them apart).
"""

import sqlite3

from mainframe_bridge import eod_file
from mainframe_bridge.records import (
    RC_DAY_CLOSED, RC_LEDGER_MISMATCH, RC_OK, RC_UNBALANCED, RC_UNKNOWN_ACCOUNT, BookItem, Entry, PostingRecord,
    Reply, imbalance, iso_date,
)
from paymesh.chart_of_accounts import every_account
from paymesh.sqlite import rows_with_ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order of first sight
    posting_id TEXT NOT NULL UNIQUE,
    business_date INTEGER NOT NULL,
    payment_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    loan_type INTEGER NOT NULL,
    return_code INTEGER NOT NULL,
    reference TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS postings_by_date ON postings (business_date, return_code);
CREATE TABLE IF NOT EXISTS entries (
    posting_seq INTEGER NOT NULL REFERENCES postings (seq),
    line INTEGER NOT NULL,
    entry_id TEXT NOT NULL,
    account TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('D', 'C')),
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (posting_seq, line)
);
CREATE TABLE IF NOT EXISTS eod_files (
    business_date INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    record_count INTEGER NOT NULL,
    return_code INTEGER NOT NULL,
    message TEXT NOT NULL,
    received_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    digest BLOB                              -- SHA-256 of the file's bytes (NULL in rows from before it was kept)
);
CREATE INDEX IF NOT EXISTS eod_files_by_date ON eod_files (business_date, return_code);
"""
ACCOUNTS = every_account()


# What a book made by an older emulator lacks (paymesh.sqlite.Store adds it): eod_files' digest.
ADDED_COLUMNS = {"eod_files": {"digest": "BLOB"}}


def post_batch(connection: sqlite3.Connection, postings: list[PostingRecord]) -> list[Reply]:
    """Posts each record (inside the caller's transaction) and returns its reply.

    The batch is written with a few statements rather than several per posting: the postings seen
    before are looked up at once, and the new ones get the seqs AUTOINCREMENT would give them (the
    next after the largest ever used), so their references are known before they are inserted."""
    seen = _replies_of(connection, [posting.posting_id for posting in postings])
    closed = closed_days(connection, list({posting.business_date for posting in postings}))
    (seq,) = connection.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'postings'), 0),"
        " coalesce((SELECT max(seq) FROM postings), 0))").fetchone()
    replies, new_postings = [], []
    new_entries: list[tuple[int, int, str, str, str, str, int]] = []
    for posting in postings:
        reply = seen.get(posting.posting_id)
        if reply is None:
            return_code, message = _check(posting, closed)
            seq += 1
            reference = f"GL{seq:014d}" if return_code == RC_OK else ""
            new_postings.append((seq, posting.posting_id, posting.business_date, posting.payment_id,
                                 posting.channel, posting.loan_type, return_code, reference, message))
            if return_code == RC_OK:
                new_entries.extend((seq, line, e.entry_id, e.account, e.side, e.currency, e.amount)
                                   for line, e in enumerate(posting.entries, 1))
            # A second copy in the same batch is a replay like any other.
            reply = seen[posting.posting_id] = Reply(posting.posting_id, return_code, reference, message)
        replies.append(reply)
    connection.executemany(
        "INSERT INTO postings (seq, posting_id, business_date, payment_id, channel, loan_type, return_code,"
        " reference, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", new_postings)
    connection.executemany(
        "INSERT INTO entries (posting_seq, line, entry_id, account, side, currency, amount)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)", new_entries)
    return replies


def _replies_of(connection: sqlite3.Connection, posting_ids: list[str]) -> dict[str, Reply]:
    """The stored reply of each posting id already in the book."""
    rows = rows_with_ids(
        connection, "SELECT posting_id, return_code, reference, message FROM postings WHERE posting_id IN ({})",
        posting_ids)
    return {row[0]: Reply(*row) for row in rows}


def closed_days(connection: sqlite3.Connection, business_dates: list[int]) -> set[int]:
    """Those of the dates whose end-of-day file was accepted."""
    return {row[0] for row in rows_with_ids(
        connection, "SELECT DISTINCT business_date FROM eod_files WHERE return_code = 0 AND business_date IN ({})",
        business_dates)}


def _check(posting: PostingRecord, closed: set[int]) -> tuple[int, str]:
    if posting.business_date in closed:
        return RC_DAY_CLOSED, f"business day {iso_date(posting.business_date)} is closed"
    if not posting.entries or any(e.amount <= 0 for e in posting.entries):
        return RC_UNBALANCED, "a movement needs entries with positive amounts"
    unknown = sorted({e.account for e in posting.entries} - ACCOUNTS)
    if unknown:
        return RC_UNKNOWN_ACCOUNT, f"unknown account {unknown[0]}"
    off = imbalance(posting.entries)
    if off:
        currency, amount = sorted(off.items())[0]
        return RC_UNBALANCED, f"debits and credits differ by {amount} in {currency}"
    return RC_OK, "posted"


def day_entries(connection: sqlite3.Connection, business_date: int) -> list[tuple[str, Entry]]:
    """(posting id, entry) for every entry posted on the date."""
    rows = connection.execute(
        "SELECT p.posting_id, e.entry_id, e.account, e.side, e.currency, e.amount FROM postings p"
        " JOIN entries e ON e.posting_seq = p.seq WHERE p.business_date = ? AND p.return_code = 0",
        (business_date,),
    )
    return [(row[0], Entry(*row[1:])) for row in rows]


def take_eod_file(connection: sqlite3.Connection, eod: eod_file.EodFile, digest: bytes) -> tuple[int, str, int]:
    """Checks a well-formed end-of-day file and records the verdict (inside the caller's transaction):
    (return code, message, detail count) for its EOD-REPLY.

    The file a day was closed with, sent again (a bridge that got no answer retries), gets the first
    answer and records nothing; any other file for that day is refused."""
    accepted = connection.execute(
        "SELECT digest, record_count, message FROM eod_files WHERE business_date = ? AND return_code = 0"
        " ORDER BY received_seq LIMIT 1", (eod.business_date,)).fetchone()
    if accepted is not None and accepted[0] == digest:
        return RC_OK, accepted[2], accepted[1]
    if accepted is not None:
        return_code = RC_DAY_CLOSED
        message = f"business day {iso_date(eod.business_date)} already closed with another file"
    else:
        return_code, message = eod_file.check_totals(eod)
    if return_code == RC_OK:
        posted = day_entries(connection, eod.business_date)
        if sorted(posted) != sorted((d.posting_id, d.entry) for d in eod.details):
            return_code = RC_LEDGER_MISMATCH
            message = f"the file's {len(eod.details)} details are not the ledger's {len(posted)} entries of the day"
    connection.execute(
        "INSERT INTO eod_files (business_date, file_name, record_count, return_code, message, digest)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (eod.business_date, eod.file_name, len(eod.details), return_code, message, digest))
    return return_code, message, len(eod.details)


def book_page(connection: sqlite3.Connection, business_date: int, after: tuple[int, int],
              limit: int) -> tuple[list[BookItem], bool]:
    """Up to limit entries of the postings posted on the date, in (seq, line) order after the position
    `after`; and whether more follow."""
    after_seq, after_line = after
    rows = connection.execute(
        "SELECT p.seq, e.line, p.posting_id, p.payment_id, p.channel, p.loan_type,"
        " e.entry_id, e.account, e.side, e.currency, e.amount FROM postings p JOIN entries e ON e.posting_seq = p.seq"
        " WHERE p.seq >= ? AND p.business_date = ? AND p.return_code = 0 AND (p.seq > ? OR e.line > ?)"
        " ORDER BY p.seq, e.line LIMIT ?",
        (after_seq, business_date, after_seq, after_line, limit + 1)).fetchall()
    items = [BookItem(seq, line, posting_id, payment_id, channel, loan_type, Entry(*entry))
             for seq, line, posting_id, payment_id, channel, loan_type, *entry in rows[:limit]]
    return items, len(rows) > limit
