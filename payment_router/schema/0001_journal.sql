-- The router's journal on PostgreSQL: the tables of payment_router/journal.py's SCHEMA, shared by
-- every router replica. The same SQL runs on both backends; what differs is only declared here.
CREATE TABLE payment (
    payment_id TEXT PRIMARY KEY,             -- from the channel and its key: a retry to any replica is this row
    channel INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    loan_type INTEGER NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    business_date TEXT NOT NULL,
    status INTEGER NOT NULL,
    batch_id TEXT,
    payment BYTEA NOT NULL,
    confirmation_sequence BIGINT NOT NULL DEFAULT 0,
    value_date TEXT NOT NULL DEFAULT '',
    reversal_date TEXT,
    -- SQLite's implicit rowid, made explicit: the journal resends unanswered payments in accept order.
    rowid BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX payment_by_day ON payment (business_date, channel);
CREATE INDEX payment_by_status ON payment (status);
CREATE INDEX payment_by_reversal_day ON payment (reversal_date) WHERE reversal_date IS NOT NULL;
CREATE INDEX payment_unanswered ON payment (rowid) WHERE status = 1;

CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic TEXT NOT NULL,
    item_key TEXT NOT NULL,
    body BYTEA NOT NULL,
    traceparent TEXT NOT NULL,
    refused_at DOUBLE PRECISION,
    refused_reason INTEGER NOT NULL DEFAULT 0,
    refused_message TEXT NOT NULL DEFAULT '',
    queued_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    UNIQUE (topic, item_key)
);
CREATE INDEX outbox_refused ON outbox (id) WHERE refused_at IS NOT NULL;

CREATE TABLE batch_line (
    channel INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    line_number INTEGER NOT NULL,
    payment_id TEXT,
    refusal BYTEA,
    PRIMARY KEY (channel, batch_id, line_number)
);

CREATE TABLE archived_payment (
    payment_id TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    business_date TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX archived_payment_by_day ON archived_payment (business_date);
CREATE TABLE dropped_day (business_date TEXT PRIMARY KEY);
