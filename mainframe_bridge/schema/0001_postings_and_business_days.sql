-- The bridge's queue on PostgreSQL: the tables of mainframe_bridge/queue_store.py's SQLite SCHEMA,
-- with PostgreSQL's types (BIGINT minor units, BYTEA records and digests, DOUBLE PRECISION epoch
-- seconds). Dates stay ISO text, as on SQLite, so the store's SQL compares them the same way on both.
-- seq is the order postings go to the mainframe and the order of the end-of-day file: only the
-- lease holder writes (every write transaction is fenced, paymesh.lease), one transaction at a
-- time on its store's one connection, so the order of the numbers is the order of the commits.
CREATE TABLE postings (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    posting_id TEXT NOT NULL UNIQUE,
    business_date TEXT NOT NULL,
    channel INTEGER NOT NULL,
    loan_type INTEGER NOT NULL,
    reversal INTEGER NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    frame BYTEA NOT NULL,
    status INTEGER NOT NULL,
    reference TEXT NOT NULL DEFAULT '',
    rejection_reason INTEGER NOT NULL DEFAULT 0,
    rejection_message TEXT NOT NULL DEFAULT '',
    queued_at DOUBLE PRECISION NOT NULL,
    posted_at DOUBLE PRECISION,
    original_date TEXT NOT NULL DEFAULT ''
);
CREATE INDEX postings_queued ON postings (seq) WHERE status = 1;
CREATE INDEX postings_by_date ON postings (business_date, status);
CREATE INDEX postings_late ON postings (original_date) WHERE original_date != '';
CREATE TABLE business_days (
    business_date TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    result BYTEA,
    closing_since DOUBLE PRECISION
);
CREATE TABLE archived_posting (
    posting_id TEXT PRIMARY KEY,
    business_date TEXT NOT NULL,
    digest BYTEA NOT NULL,
    status INTEGER NOT NULL,
    reference TEXT NOT NULL,
    rejection_reason INTEGER NOT NULL,
    rejection_message TEXT NOT NULL,
    queued_at DOUBLE PRECISION,
    posted_at DOUBLE PRECISION
);
CREATE INDEX archived_posting_by_day ON archived_posting (business_date);
