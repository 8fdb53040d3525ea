-- The journal's payments partitioned by booking date (LIST (business_date), a partition a day, made
-- by paymesh.postgres.ensure_day_partitions as payments of a new day are written), so that dropping an
-- archived day (paymesh archive --drop) drops its partition and gives its space back at once; a DELETE
-- only left the space for a vacuum to reuse.
--
-- A partitioned table's unique keys must hold its partition key, but a payment id must be unique across
-- days: a retry booked on a later business date (after the close) must still find its payment. So the
-- ids live in payment_key, not partitioned, whose primary key the accept's insert claims first; it is
-- also how a payment is found by its id (its day, then its partition's row). Once a payment's day is
-- dropped its key keeps the body hash and final status, for paymesh.retention's time: the one table for
-- both jobs (archived_payment, SQLite's, is not needed here).
CREATE TABLE payment_key (
    payment_id TEXT PRIMARY KEY,
    business_date TEXT NOT NULL,             -- the booking date: the payment's partition
    -- Set when the payment leaves with its day: what the same key sent again is answered with.
    body_hash TEXT,
    status INTEGER
);
-- Only archived keys are indexed (the keys forgotten after the retention): an accept's claim writes none.
CREATE INDEX payment_key_archived_by_day ON payment_key (business_date) WHERE status IS NOT NULL;

ALTER TABLE payment RENAME TO payment_before_0002;
ALTER TABLE payment_before_0002 DROP CONSTRAINT payment_pkey;
DROP INDEX payment_by_day, payment_by_status, payment_by_reversal_day, payment_unanswered;

-- PostgreSQL 15 has no identity column on a partitioned table: the accept order is a sequence's.
CREATE SEQUENCE payment_rowid;
CREATE TABLE payment (
    payment_id TEXT NOT NULL,
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
    rowid BIGINT NOT NULL DEFAULT nextval('payment_rowid'),
    PRIMARY KEY (business_date, payment_id)
) PARTITION BY LIST (business_date);
ALTER SEQUENCE payment_rowid OWNED BY payment.rowid;
-- No index by day (the partition is the day) nor by any status (the unanswered one is below).
CREATE INDEX payment_by_reversal_day ON payment (reversal_date) WHERE reversal_date IS NOT NULL;
CREATE INDEX payment_unanswered ON payment (rowid) WHERE status = 1;

-- The rows of a journal made before: each day's partition (named as paymesh.postgres.day_partition
-- names it), the payments with their accept order, their keys, and the keys archived_payment kept.
DO $$
DECLARE
    day TEXT;
BEGIN
    FOR day IN SELECT DISTINCT business_date FROM payment_before_0002 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF payment FOR VALUES IN (%L)',
                       'payment_' || replace(day, '-', ''), day);
    END LOOP;
END $$;
INSERT INTO payment (payment_id, channel, idempotency_key, body_hash, loan_type, currency, amount_minor,
                     business_date, status, batch_id, payment, confirmation_sequence, value_date, reversal_date,
                     rowid)
    SELECT payment_id, channel, idempotency_key, body_hash, loan_type, currency, amount_minor, business_date,
           status, batch_id, payment, confirmation_sequence, value_date, reversal_date, rowid
    FROM payment_before_0002;
SELECT setval('payment_rowid', coalesce((SELECT max(rowid) FROM payment_before_0002), 0) + 1, false);
INSERT INTO payment_key (payment_id, business_date) SELECT payment_id, business_date FROM payment_before_0002;
INSERT INTO payment_key (payment_id, business_date, body_hash, status)
    SELECT payment_id, business_date, body_hash, status FROM archived_payment
    ON CONFLICT (payment_id) DO NOTHING;
DROP TABLE payment_before_0002;
DROP TABLE archived_payment;
