-- Router replicas on one journal claim outbox rows instead of each sending all
-- (payment_router.journal.Journal.claim): a row is held by one replica for a lease, renewed while its
-- peer has not answered, and taken by any replica once the lease lapses (its holder died).

-- The payment a row is of (payment_router.journal.outbox_payment_id): a confirmation's key starts with
-- it, a posting names it in its body (bank.ledger.v1.Posting, field 3, payment_id). Derived here so
-- that every writer's rows, and the rows already waiting, have it without a step of their own.
CREATE FUNCTION protobuf_string_field(message BYTEA, wanted INTEGER) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    position INTEGER := 0;  -- get_byte's offsets start at 0
    tag BIGINT;
    size BIGINT;
    shift INTEGER;
    byte INTEGER;
BEGIN
    WHILE position < length(message) LOOP
        tag := 0; shift := 0;
        LOOP  -- a varint: 7 bits a byte, the high bit set on all but the last
            byte := get_byte(message, position); position := position + 1;
            tag := tag | ((byte & 127)::BIGINT << shift); shift := shift + 7;
            EXIT WHEN byte < 128;
        END LOOP;
        CASE tag & 7
            WHEN 0 THEN LOOP byte := get_byte(message, position); position := position + 1; EXIT WHEN byte < 128;
                        END LOOP;
            WHEN 1 THEN position := position + 8;
            WHEN 5 THEN position := position + 4;
            WHEN 2 THEN
                size := 0; shift := 0;
                LOOP
                    byte := get_byte(message, position); position := position + 1;
                    size := size | ((byte & 127)::BIGINT << shift); shift := shift + 7;
                    EXIT WHEN byte < 128;
                END LOOP;
                IF tag >> 3 = wanted THEN
                    RETURN convert_from(substring(message FROM position + 1 FOR size::INTEGER), 'UTF8');
                END IF;
                position := position + size::INTEGER;
            ELSE RETURN '';  -- groups: none of the outbox's messages has them
        END CASE;
    END LOOP;
    RETURN '';  -- absent: proto3's empty string
END $$;

ALTER TABLE outbox
    ADD COLUMN payment_id TEXT GENERATED ALWAYS AS (
        CASE WHEN topic = 'posting' THEN protobuf_string_field(body, 3) ELSE split_part(item_key, ':', 1) END
    ) STORED,
    ADD COLUMN claimed_by TEXT,  -- the replica holding the row (Journal.claimant), or NULL: never claimed
    -- Its lease, on the database's clock: once lapsed, any replica takes it. A free row's lapsed long
    -- ago ('-infinity'), so free and lapsed are one range of outbox_claimable.
    ADD COLUMN claimed_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity';

-- What Journal.claim reads without walking the rows held in flight (thousands while a peer is away):
-- a replica's own rows after its cursor; the rows free or lapsed; and, for those, whether an earlier
-- row of their payment and topic waits (then not yet: a reversal never reaches its peer before its
-- result). The last is an index on an expression no other index serves, so the planner takes it for
-- that look-up even before the table has statistics.
CREATE INDEX outbox_by_topic ON outbox (topic, id) WHERE refused_at IS NULL;
CREATE INDEX outbox_claimable ON outbox (topic, claimed_until, id) WHERE refused_at IS NULL;
CREATE INDEX outbox_by_payment ON outbox ((topic || ' ' || payment_id), id) WHERE refused_at IS NULL;
