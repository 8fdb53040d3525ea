-- postings partitioned by booking date: a day's postings are one partition (postings_YYYYMMDD,
-- paymesh.postgres.day_partition), made by the first write of the day (queue_store.enqueue, by
-- paymesh.postgres.ensure_day_partitions) and dropped whole when the day is archived
-- (queue_store.drop_day): its space goes back at once, where a DELETE left it to a vacuum's reuse.
--
-- What a partitioned table cannot have, and what stands instead:
-- - an identity column: seq is drawn from the sequence postings_order (owned by postings.seq, so
--   it goes with the table), still inside the lease holder's fenced write transaction, so its order is still
--   the commit order (queue_store's docstring says why);
-- - a unique key without business_date: the primary key is (seq, business_date), seq leading so a
--   lookup by seq (the mainframe's answers) is one index probe per day; posting_id keeps a plain
--   index, and enqueue looks every posting id up before it inserts (queue_store._known_of says why
--   that is as strict as the UNIQUE was).
ALTER TABLE postings RENAME TO postings_unpartitioned;
DROP INDEX postings_queued;
DROP INDEX postings_by_date;
DROP INDEX postings_late;
CREATE TABLE postings (
    seq BIGINT NOT NULL,
    posting_id TEXT NOT NULL,
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
    original_date TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (seq, business_date)
) PARTITION BY LIST (business_date);
-- The queue's rows move over, each day into its partition (named as day_partition names them).
DO $$
DECLARE
    day TEXT;
BEGIN
    FOR day IN SELECT DISTINCT business_date FROM postings_unpartitioned LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF postings FOR VALUES IN (%L)',
                       'postings_' || replace(day, '-', ''), day);
    END LOOP;
END $$;
INSERT INTO postings SELECT seq, posting_id, business_date, channel, loan_type, reversal, currency, amount, digest,
    frame, status, reference, rejection_reason, rejection_message, queued_at, posted_at, original_date
    FROM postings_unpartitioned;
-- The numbers go on after the last one drawn: a dropped day's too (its identity sequence goes with
-- the old table), so a number is never given twice.
CREATE SEQUENCE postings_order AS BIGINT OWNED BY postings.seq;
DO $$
DECLARE
    drawn BIGINT;
BEGIN
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value END FROM %s',
                   pg_get_serial_sequence('postings_unpartitioned', 'seq')) INTO drawn;
    PERFORM setval('postings_order', coalesce(greatest(drawn, (SELECT max(seq) FROM postings_unpartitioned)), 0) + 1,
                   false);
END $$;
DROP TABLE postings_unpartitioned;
ALTER TABLE postings ALTER COLUMN seq SET DEFAULT nextval('postings_order');
CREATE INDEX postings_queued ON postings (seq) WHERE status = 1;
CREATE INDEX postings_by_date ON postings (business_date, status);
CREATE INDEX postings_late ON postings (original_date) WHERE original_date != '';
CREATE INDEX postings_by_id ON postings (posting_id);
