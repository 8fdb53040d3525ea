"""The router's journal on PostgreSQL, partitioned by booking date (payment_router/schema/0002): a journal
of the schema before is moved whole (every payment, its accept order, the keys of dropped days); two
replicas given one payment on two booking days (a retry after the close, at the other replica) at once
journal it once; a day's partition is made by the commit that first books in it."""

import asyncio
import shutil

from bank.common.v1 import types_pb2
from bank.payments.v1 import payments_pb2
from payment_router.journal import POSTGRES_SCHEMA, Accepted, Journal, open_store
from paymesh.postgres import connect, migrate

DAY, NEXT_DAY, OLD_DAY = "2026-11-27", "2026-11-30", "2026-10-01"


def payment(payment_id: str, day: str = DAY, status=types_pb2.PAYMENT_STATUS_APPLIED) -> payments_pb2.Payment:
    return payments_pb2.Payment(payment_id=payment_id, channel=types_pb2.CHANNEL_ATM, idempotency_key=payment_id,
                                loan_id="CSH-000001", loan_type=types_pb2.LOAN_TYPE_CASH, status=status,
                                amount=types_pb2.Money(currency_code="PEN", amount_minor=10_000),
                                business_date=day, value_date=day)


def journal_on(url: str, tmp_path) -> Journal:
    return Journal(open_store(tmp_path, {"PAYMESH_PAYMENT_ROUTER_DATABASE_URL": url}))


def partitions(url: str) -> set[str]:
    connection = connect(url)
    try:
        return {row[0] for row in connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'payment'::regclass")}
    finally:
        connection.close()


async def test_a_journal_of_the_schema_before_is_moved_into_day_partitions(postgres_url, tmp_path):
    # The journal as release 0001 left it: payments of two days (one still unanswered), a dropped day's key.
    only_first = tmp_path / "schema"  # (the migrations' lock is named by the folder's name, as the real one)
    only_first.mkdir()
    shutil.copy(POSTGRES_SCHEMA / "0001_journal.sql", only_first)
    connection = connect(postgres_url)
    assert migrate(connection, only_first) == 1
    rows = [payment("PAY-a1", status=types_pb2.PAYMENT_STATUS_ACCEPTED), payment("PAY-a2"),
            payment("PAY-b1", day=NEXT_DAY, status=types_pb2.PAYMENT_STATUS_ACCEPTED), payment("PAY-b2", day=NEXT_DAY)]
    for p in rows:
        connection.execute(
            "INSERT INTO payment (payment_id, channel, idempotency_key, body_hash, loan_type, currency, amount_minor,"
            " business_date, status, payment, confirmation_sequence, value_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?)", (p.payment_id, p.channel, p.idempotency_key, f"hash-{p.payment_id}", p.loan_type, "PEN",
                          10_000, p.business_date, p.status, p.SerializeToString(), 7, p.value_date))
    connection.execute("INSERT INTO archived_payment VALUES ('PAY-old', 'hash-PAY-old', ?, ?)",
                       (OLD_DAY, types_pb2.PAYMENT_STATUS_REJECTED))
    connection.execute("INSERT INTO dropped_day VALUES (?)", (OLD_DAY,))
    connection.execute("INSERT INTO batch_line (channel, batch_id, line_number, payment_id) VALUES (?, 'FILE-1', 1,"
                       " 'PAY-old'), (?, 'FILE-1', 2, 'PAY-a2')", (types_pb2.CHANNEL_ATM, types_pb2.CHANNEL_ATM))
    connection.close()

    journal = journal_on(postgres_url, tmp_path)  # migrates to 0002
    try:
        assert partitions(postgres_url) == {"payment_20261127", "payment_20261130"}
        assert [p.payment_id for p in await journal.unanswered()] == ["PAY-a1", "PAY-b1"]  # the accept order
        assert (await journal.get("PAY-b2")).confirmation_sequence == 7
        assert {p.payment_id for p in await journal.day_payments(NEXT_DAY)} == {"PAY-b1", "PAY-b2"}
        lines = dict(await journal.batch_results(types_pb2.CHANNEL_ATM, "FILE-1", 0, 10))
        assert (lines[1].business_date, lines[1].status) == (OLD_DAY, types_pb2.PAYMENT_STATUS_REJECTED)
        assert lines[2].status == types_pb2.PAYMENT_STATUS_APPLIED

        # The old day's key is still answered; a moved payment is found by its id from a later day.
        old, moved, new = await journal.accept([
            Accepted(payment("PAY-old", day=NEXT_DAY, status=types_pb2.PAYMENT_STATUS_ACCEPTED), "hash-PAY-old"),
            Accepted(payment("PAY-a2", day=NEXT_DAY, status=types_pb2.PAYMENT_STATUS_ACCEPTED), "hash-PAY-a2"),
            Accepted(payment("PAY-c1", day="2026-12-01", status=types_pb2.PAYMENT_STATUS_ACCEPTED), "hash-PAY-c1")])
        assert old.archived and (old.payment.business_date, old.body_hash) == (OLD_DAY, "hash-PAY-old")
        assert not moved.new and moved.payment.business_date == DAY
        assert new.new and "payment_20261201" in partitions(postgres_url)
        assert [p.payment_id for p in await journal.unanswered()] == ["PAY-a1", "PAY-b1", "PAY-c1"]
    finally:
        await journal.close()


async def test_one_payment_sent_to_two_replicas_on_two_booking_days_is_journaled_once(postgres_url, tmp_path):
    """As when a channel's retry after the close reaches the other replica: each books it on its own day.
    One commit claims each id, the other finds that payment on its day; each's commit holds the ids in
    the other's order, so PostgreSQL may end one for a deadlock, which is run again whole."""
    first, second = journal_on(postgres_url, tmp_path / "first"), journal_on(postgres_url, tmp_path / "second")
    ids = [f"PAY-{n}" for n in range(60)]
    try:
        before_close = [Accepted(payment(i, status=types_pb2.PAYMENT_STATUS_ACCEPTED), f"hash-{i}") for i in ids]
        after_close = [Accepted(payment(i, day=NEXT_DAY, status=types_pb2.PAYMENT_STATUS_ACCEPTED), f"hash-{i}")
                       for i in reversed(ids)]
        by_first, by_second = await asyncio.gather(first.accept(before_close), second.accept(after_close))
        outcomes = {i: [o for o in by_first if o.payment.payment_id == i] +
                    [o for o in by_second if o.payment.payment_id == i] for i in ids}
        for i, (a, b) in outcomes.items():
            assert a.new != b.new, f"{i} journaled by exactly one replica"
            assert a.payment.business_date == b.payment.business_date, i
        journaled = {p.payment_id: p.business_date
                     for day in (DAY, NEXT_DAY) for p in await first.day_payments(day)}
        assert sorted(journaled) == sorted(ids)
        assert all(journaled[i] == (DAY if outcomes[i][0].new else NEXT_DAY) for i in ids)
    finally:
        await first.close()
        await second.close()
    connection = connect(postgres_url)
    try:
        assert connection.execute("SELECT count(*) FROM payment").fetchone()[0] == len(ids)
        assert connection.execute("SELECT count(*) FROM payment_key").fetchone()[0] == len(ids)
    finally:
        connection.close()


async def test_a_dropped_day_s_partition_goes_and_what_it_kept_goes_with_the_later_day(postgres_url, tmp_path):
    """The drop's partitions: a day's goes whole; a payment reversed on a later day stays in a new small
    partition of its day, which goes with the later day's drop (its last payment gone)."""
    journal = journal_on(postgres_url, tmp_path)
    try:
        for p in (payment("PAY-1"), payment("PAY-2"), payment("PAY-3", day=NEXT_DAY)):
            accepted = payments_pb2.Payment()
            accepted.CopyFrom(p)
            accepted.status = types_pb2.PAYMENT_STATUS_ACCEPTED
            await journal.accept([Accepted(accepted, "h")])
            await journal.record(p, [])
        reversed_ = payment("PAY-2", status=types_pb2.PAYMENT_STATUS_REVERSED)
        reversed_.reversal_business_date = NEXT_DAY
        await journal.record(reversed_, [])
        assert partitions(postgres_url) == {"payment_20261127", "payment_20261130"}

        assert (await journal.drop_day(DAY, keys_kept_from="2026-08-29")).dropped_count == 1
        assert partitions(postgres_url) == {"payment_20261127", "payment_20261130"}  # PAY-2's, new and small
        assert [p.payment_id for p in await journal.day_payments(DAY)] == ["PAY-2"]
        assert (await journal.drop_day(NEXT_DAY, keys_kept_from="2026-08-29")).dropped_count == 2
        assert partitions(postgres_url) == set()
        (outcome,) = await journal.accept([Accepted(payment("PAY-2", day="2026-12-01"), "h")])
        assert outcome.archived and outcome.payment.status == types_pb2.PAYMENT_STATUS_REVERSED
    finally:
        await journal.close()
