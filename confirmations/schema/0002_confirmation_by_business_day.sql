-- confirmation partitioned by booking date: a day's confirmations are one partition
-- (confirmation_YYYYMMDD, paymesh.postgres.day_partition), made by the first append of the day
-- (log.append, by paymesh.postgres.ensure_day_partitions) and dropped whole when the day is archived
-- (log.drop_day): its space goes back at once, where a DELETE left it to a vacuum's reuse.
--
-- A partitioned table's unique keys must hold business_date, so:
-- - the primary key is (sequence, business_date), sequence leading: a lookup by sequence (the
--   webhooks' joins, a subscriber's read) is one index probe per day. sequence is still given by
--   log.append in the lease holder's fenced transaction, gapless and in commit order;
-- - UNIQUE (payment_id, status) becomes UNIQUE (payment_id, status, business_date). Dedupe is
--   log.append's lookup by payment_id (any day) before it inserts, in the same fenced transaction,
--   and this key still backs it: a confirmation republished by the router is the same bytes as the
--   first (the outbox row's body, made once when the payment was recorded), so the same business_date.
-- The by-date index goes: each day is its own partition, read whole.
ALTER TABLE confirmation RENAME TO confirmation_unpartitioned;
ALTER TABLE confirmation_unpartitioned DROP CONSTRAINT confirmation_pkey;
ALTER TABLE confirmation_unpartitioned DROP CONSTRAINT confirmation_payment_id_status_key;
DROP INDEX confirmation_by_channel;
DROP INDEX confirmation_by_date;
CREATE TABLE confirmation (
    sequence BIGINT NOT NULL,
    payment_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    loan_type INTEGER NOT NULL,
    business_date TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (sequence, business_date),
    UNIQUE (payment_id, status, business_date)
) PARTITION BY LIST (business_date);
-- The log's rows move over, each day into its partition (named as day_partition names them).
DO $$
DECLARE
    day TEXT;
BEGIN
    FOR day IN SELECT DISTINCT business_date FROM confirmation_unpartitioned LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF confirmation FOR VALUES IN (%L)',
                       'confirmation_' || replace(day, '-', ''), day);
    END LOOP;
END $$;
INSERT INTO confirmation SELECT sequence, payment_id, status, channel, loan_type, business_date, currency,
    amount_minor, body FROM confirmation_unpartitioned;
DROP TABLE confirmation_unpartitioned;
CREATE INDEX confirmation_by_channel ON confirmation (channel, sequence);
