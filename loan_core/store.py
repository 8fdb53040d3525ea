"""The core's store: its loans and every movement (payment or reversal) ever applied.

One SQL for both backends (paymesh.postgres): a SQLite file by default (SCHEMA, below), or the
core's own PostgreSQL database (the numbered files of loan_core/schema/, POSTGRES_SCHEMA_DIR).

Movements are never deleted. Each keeps its first answer (so a replay gets it back
unchanged), a digest of its request (so a reused id with another body is recognised), what
the payment asked (value date, prepayment mode: so it can be applied again) and the loan's
state before it (so a reversal restores the loan exactly). Only two things change: a payment
records the id of the reversal that undid it, and the reversal of an earlier payment of its
loan, which applies it again, gives it the loan's new state before it and, if its allocation
came out different, a revision (the `revisions` table, with the ledger's difference).
A loan's state is NULL until its first movement: it is then the loan as originated.
Its first settled installments are kept apart, in `archive` (rewritten only every so many
settled installments), so that a payment writes only the installments still open.
"""

import sqlite3
from datetime import date
from pathlib import Path
from typing import NamedTuple

from loan_core.loan import LoanTerms
from paymesh.sqlite import add_missing_columns

SCHEMA = """
CREATE TABLE IF NOT EXISTS loans (
    loan_id TEXT PRIMARY KEY,
    loan_type INTEGER NOT NULL,
    borrower_id TEXT NOT NULL,
    currency_code TEXT NOT NULL,
    principal_minor INTEGER NOT NULL,
    annual_rate_bps INTEGER NOT NULL,
    term_months INTEGER NOT NULL,
    disbursement_date TEXT NOT NULL,
    balloon_minor INTEGER NOT NULL,
    asset_insurance_minor INTEGER NOT NULL,
    installments_paid INTEGER NOT NULL,
    state TEXT,
    archive TEXT
);
CREATE TABLE IF NOT EXISTS movements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    movement_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'reversal')),
    payment_id TEXT NOT NULL,
    loan_id TEXT NOT NULL REFERENCES loans (loan_id),
    business_date TEXT NOT NULL,
    channel INTEGER NOT NULL,
    currency_code TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    request_digest BLOB NOT NULL,
    result BLOB NOT NULL,
    loan_before TEXT,
    reversed_by TEXT,
    value_date TEXT,  -- the day the customer paid; NULL in stores of before it was kept: business_date
    prepayment_mode INTEGER
);
-- A payment's allocation as revised by the reversal of an earlier payment of its loan (a
-- PaymentRevision); its n-th revision is "<payment_id>:R<n>".
CREATE TABLE IF NOT EXISTS revisions (
    revision_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    reversal_id TEXT NOT NULL,
    loan_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    result BLOB NOT NULL,
    UNIQUE (payment_id, revision)
);
-- Payments refused because of the loan's state at the time (paid off, above the payoff, a product
-- rule): the answer is kept so a replay gets the same one. Refusals of the request's own fields
-- are not kept; they come out the same every time.
CREATE TABLE IF NOT EXISTS refusals (
    payment_id TEXT PRIMARY KEY,
    loan_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    request_digest BLOB NOT NULL,
    result BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS movements_by_date ON movements (business_date, seq);
CREATE INDEX IF NOT EXISTS movements_by_loan ON movements (loan_id, seq);
CREATE INDEX IF NOT EXISTS loans_by_borrower ON loans (borrower_id);
CREATE INDEX IF NOT EXISTS revisions_by_date ON revisions (business_date);
"""

# The PostgreSQL schema: the same tables, as numbered migrations (paymesh.postgres.migrate).
POSTGRES_SCHEMA_DIR = Path(__file__).parent / "schema"

_TERMS_COLUMNS = ("loan_id, loan_type, borrower_id, currency_code, principal_minor, annual_rate_bps, term_months, "
                  "disbursement_date, balloon_minor, asset_insurance_minor, installments_paid")


def migrate(connection: sqlite3.Connection) -> None:
    """Adds what a store made by an earlier version lacks (its states are read as they are)."""
    add_missing_columns(connection, {"loans": {"archive": "TEXT"},
                                     "movements": {"value_date": "TEXT", "prepayment_mode": "INTEGER"}})


def seed_if_empty(connection: sqlite3.Connection, loans: list[LoanTerms]) -> int:
    """Inserts the generated portfolio into an empty store; returns how many loans it added."""
    if connection.execute("SELECT 1 FROM loans LIMIT 1").fetchone():
        return 0
    return insert_loans(connection, loans)


def insert_loans(connection: sqlite3.Connection, loans: list[LoanTerms]) -> int:
    """Inserts loans the store does not hold yet (their state NULL: as originated); how many."""
    rows = [(t.loan_id, t.loan_type, t.borrower_id, t.currency_code, t.principal_minor, t.annual_rate_bps,
             t.term_months, t.disbursement_date.isoformat(), t.balloon_minor, t.asset_insurance_minor,
             t.installments_paid) for t in loans]
    connection.executemany(f"INSERT INTO loans ({_TERMS_COLUMNS}) VALUES ({', '.join('?' * 11)})", rows)
    return len(rows)


def load_loan(connection: sqlite3.Connection, loan_id: str) -> tuple[LoanTerms, str | None, str | None] | None:
    """(terms, state, archive) of a loan."""
    row = connection.execute(f"SELECT {_TERMS_COLUMNS}, state, archive FROM loans WHERE loan_id = ?",
                             (loan_id,)).fetchone()
    if row is None:
        return None
    (loan_id, loan_type, borrower_id, currency_code, principal_minor, annual_rate_bps, term_months, disbursed,
     balloon_minor, asset_insurance_minor, installments_paid, state, archive) = row
    terms = LoanTerms(loan_id, loan_type, borrower_id, currency_code, principal_minor, annual_rate_bps, term_months,
                      date.fromisoformat(disbursed), balloon_minor, asset_insurance_minor, installments_paid)
    return terms, state, archive


def loan_ids_of_borrower(connection: sqlite3.Connection, borrower_id: str) -> list[str]:
    return [row[0] for row in connection.execute(
        "SELECT loan_id FROM loans WHERE borrower_id = ? ORDER BY loan_id", (borrower_id,))]


def save_state(connection: sqlite3.Connection, loan_id: str, state_json: str | None) -> None:
    connection.execute("UPDATE loans SET state = ? WHERE loan_id = ?", (state_json, loan_id))


def save_state_and_archive(connection: sqlite3.Connection, loan_id: str, state_json: str | None,
                           archive_json: str) -> None:
    connection.execute("UPDATE loans SET state = ?, archive = ? WHERE loan_id = ?", (state_json, archive_json, loan_id))


def find_movement(connection: sqlite3.Connection, movement_id: str) -> sqlite3.Row | None:
    return connection.execute(
        "SELECT seq, kind, payment_id, loan_id, request_digest, result, loan_before, reversed_by, channel, "
        "currency_code, amount_minor FROM movements WHERE movement_id = ?", (movement_id,)
    ).fetchone()


def find_decisions(connection: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[str, bytes, bytes]]:
    """{id: (kind, request_digest, result)} for the ids already stored as a movement
    (kind "payment" or "reversal") or a refusal (kind "refusal")."""
    found: dict[str, tuple[str, bytes, bytes]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 400):
        chunk = unique[start:start + 400]
        marks = ", ".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT movement_id, kind, request_digest, result FROM movements WHERE movement_id IN ({marks}) "
            f"UNION ALL SELECT payment_id, 'refusal', request_digest, result FROM refusals "
            f"WHERE payment_id IN ({marks})", chunk + chunk
        ).fetchall()
        found.update((row[0], row[1:]) for row in rows)
    return found


def insert_refusal(connection: sqlite3.Connection, payment_id: str, loan_id: str, business_date: str,
                   request_digest: bytes, result: bytes) -> None:
    connection.execute("INSERT INTO refusals (payment_id, loan_id, business_date, request_digest, result) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (payment_id, loan_id, business_date, request_digest, result))


def insert_movement(
    connection: sqlite3.Connection, movement_id: str, kind: str, payment_id: str, loan_id: str,
    business_date: str, channel: int, currency_code: str, amount_minor: int, request_digest: bytes,
    result: bytes, loan_before: str | None, value_date: str | None = None, prepayment_mode: int = 0,
) -> None:
    connection.execute(
        "INSERT INTO movements (movement_id, kind, payment_id, loan_id, business_date, channel, currency_code, "
        "amount_minor, request_digest, result, loan_before, value_date, prepayment_mode) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (movement_id, kind, payment_id, loan_id, business_date, channel, currency_code, amount_minor,
         request_digest, result, loan_before, value_date, prepayment_mode),
    )


def mark_reversed(connection: sqlite3.Connection, payment_id: str, reversal_id: str) -> None:
    connection.execute("UPDATE movements SET reversed_by = ? WHERE movement_id = ? AND kind = 'payment'",
                       (reversal_id, payment_id))


class LaterPayment(NamedTuple):
    movement_id: str
    channel: int
    amount_minor: int
    value_date: str
    prepayment_mode: int
    result: bytes


def later_live_payments(connection: sqlite3.Connection, loan_id: str, seq: int) -> list[LaterPayment]:
    """The loan's payments applied after seq and not reversed, in the order they were applied."""
    return [LaterPayment(*row) for row in connection.execute(
        "SELECT movement_id, channel, amount_minor, coalesce(value_date, business_date), "
        "coalesce(prepayment_mode, 0), result FROM movements "
        "WHERE loan_id = ? AND seq > ? AND kind = 'payment' AND reversed_by IS NULL ORDER BY seq", (loan_id, seq))]


def set_loan_before(connection: sqlite3.Connection, movement_id: str, loan_before: str | None) -> None:
    connection.execute("UPDATE movements SET loan_before = ? WHERE movement_id = ?", (loan_before, movement_id))


def revisions_of(connection: sqlite3.Connection, payment_id: str) -> list[bytes]:
    """A payment's revisions (PaymentRevision), the first first."""
    return [row[0] for row in connection.execute(
        "SELECT result FROM revisions WHERE payment_id = ? ORDER BY revision", (payment_id,))]


def insert_revision(connection: sqlite3.Connection, revision_id: str, payment_id: str, revision: int,
                    reversal_id: str, loan_id: str, business_date: str, result: bytes) -> None:
    connection.execute("INSERT INTO revisions (revision_id, payment_id, revision, reversal_id, loan_id, "
                       "business_date, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (revision_id, payment_id, revision, reversal_id, loan_id, business_date, result))


def revisions_of_day(connection: sqlite3.Connection, business_date: str) -> list[bytes]:
    """The day's revisions in the order they were made: by their reversal, then by the revised
    payment's place on its loan (a reversal applies the later payments again in that order). Said
    so, not by SQLite's rowid, which PostgreSQL has not."""
    return [row[0] for row in connection.execute(
        "SELECT revision.result FROM revisions revision "
        "JOIN movements reversal ON reversal.movement_id = revision.reversal_id "
        "JOIN movements revised ON revised.movement_id = revision.payment_id "
        "WHERE revision.business_date = ? ORDER BY reversal.seq, revised.seq", (business_date,))]


def movements_of_day(connection: sqlite3.Connection, business_date: str, after_seq: int, limit: int) -> list[tuple]:
    return connection.execute(
        "SELECT seq, movement_id, payment_id, loan_id, channel, currency_code, amount_minor, kind, result "
        "FROM movements WHERE business_date = ? AND seq > ? ORDER BY seq LIMIT ?", (business_date, after_seq, limit)
    ).fetchall()


def totals_of_day(connection: sqlite3.Connection, business_date: str) -> list[tuple[str, str, int, int]]:
    """(kind, currency, count, total) over the whole day."""
    return connection.execute(
        # sum() of a BIGINT is a NUMERIC on PostgreSQL: cast back to an integer, as SQLite's is.
        "SELECT kind, currency_code, count(*), CAST(sum(amount_minor) AS BIGINT) FROM movements "
        "WHERE business_date = ? "
        "GROUP BY kind, currency_code ORDER BY kind, currency_code", (business_date,)
    ).fetchall()
