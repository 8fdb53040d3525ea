-- The confirmation store on PostgreSQL: the tables of confirmations/log.py's and webhook_store.py's
-- SQLite SCHEMA, with PostgreSQL's types (BIGINT sequences and minor units, BYTEA bodies, DOUBLE
-- PRECISION times). The same SQL runs on both backends; what differs is only declared here.

-- sequence is given by log.append, in the lease holder's fenced transaction (one writer at a time),
-- not by a PostgreSQL sequence: so the order of the numbers is the order of the commits, without gaps.
CREATE TABLE confirmation (
    sequence BIGINT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    loan_type INTEGER NOT NULL,
    business_date TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    body BYTEA NOT NULL,
    UNIQUE (payment_id, status)
);
CREATE INDEX confirmation_by_channel ON confirmation (channel, sequence);
CREATE INDEX confirmation_by_date ON confirmation (business_date);
CREATE TABLE dropped_day (
    business_date TEXT PRIMARY KEY,
    first_sequence BIGINT NOT NULL,
    last_sequence BIGINT NOT NULL,
    confirmations BIGINT NOT NULL
);
CREATE TABLE consumer (
    channel INTEGER NOT NULL,
    name TEXT NOT NULL,
    acked_sequence BIGINT NOT NULL,
    PRIMARY KEY (channel, name)
);

CREATE TABLE webhook_endpoint (
    endpoint_id TEXT PRIMARY KEY,
    channel INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    secret TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    previous_secret TEXT NOT NULL DEFAULT '',
    previous_secret_expire_time DOUBLE PRECISION NOT NULL DEFAULT 0,
    max_batch_size INTEGER NOT NULL DEFAULT 1,
    UNIQUE (channel, request_id)
);
CREATE INDEX endpoint_by_channel ON webhook_endpoint (channel) WHERE deleted = 0;
CREATE TABLE webhook_delivery (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoint (endpoint_id),
    sequence BIGINT NOT NULL,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (endpoint_id, sequence)
);
-- The lanes' partial indexes, as on SQLite (status 1 is DELIVERY_STATUS_PENDING).
CREATE INDEX delivery_untried ON webhook_delivery (endpoint_id, sequence) WHERE status = 1 AND attempts = 0;
CREATE INDEX delivery_retry_due ON webhook_delivery (endpoint_id, next_attempt_at) WHERE status = 1 AND attempts > 0;
CREATE INDEX delivery_pending_due ON webhook_delivery (endpoint_id, next_attempt_at) WHERE status = 1;
-- drop_day deletes a day's deliveries by sequence.
CREATE INDEX delivery_by_sequence ON webhook_delivery (sequence);
