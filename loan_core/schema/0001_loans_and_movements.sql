-- A core's store on PostgreSQL: the tables of loan_core/store.py's SQLite SCHEMA, with
-- PostgreSQL's types (BIGINT minor units, BYTEA answers, an identity for the movements' order).
-- Dates stay ISO text, as on SQLite, so the store's SQL compares them the same way on both.
CREATE TABLE loans (
    loan_id TEXT PRIMARY KEY,
    loan_type INTEGER NOT NULL,
    borrower_id TEXT NOT NULL,
    currency_code TEXT NOT NULL,
    principal_minor BIGINT NOT NULL,
    annual_rate_bps INTEGER NOT NULL,
    term_months INTEGER NOT NULL,
    disbursement_date TEXT NOT NULL,
    balloon_minor BIGINT NOT NULL,
    asset_insurance_minor BIGINT NOT NULL,
    installments_paid INTEGER NOT NULL,
    state TEXT,
    archive TEXT
);
-- seq is the order movements were applied in: one writer (the lease holder) at a time, so the
-- order of the numbers is the order of the commits.
CREATE TABLE movements (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    movement_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'reversal')),
    payment_id TEXT NOT NULL,
    loan_id TEXT NOT NULL REFERENCES loans (loan_id),
    business_date TEXT NOT NULL,
    channel INTEGER NOT NULL,
    currency_code TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    request_digest BYTEA NOT NULL,
    result BYTEA NOT NULL,
    loan_before TEXT,
    reversed_by TEXT,
    value_date TEXT,
    prepayment_mode INTEGER
);
CREATE TABLE revisions (
    revision_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    reversal_id TEXT NOT NULL,
    loan_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    result BYTEA NOT NULL,
    UNIQUE (payment_id, revision)
);
CREATE TABLE refusals (
    payment_id TEXT PRIMARY KEY,
    loan_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    request_digest BYTEA NOT NULL,
    result BYTEA NOT NULL
);
CREATE INDEX movements_by_date ON movements (business_date, seq);
CREATE INDEX movements_by_loan ON movements (loan_id, seq);
CREATE INDEX loans_by_borrower ON loans (borrower_id);
CREATE INDEX revisions_by_date ON revisions (business_date);
