"""Outbox claims on a shared journal (a real PostgreSQL server, two journals on one database as two
router replicas have): a replica's rows are its own to send; rows free to any are each claimed by one
replica; a dead replica's rows are another's once the lease lapses; a payment's reversal is claimable
only once its result is gone; the payment a row is of is derived by the database as the router does."""

import asyncio
import shutil
import time

import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmations_pb2
from bank.ledger.v1 import ledger_pb2
from bank.payments.v1 import payments_pb2
from payment_router import journal as journal_module
from payment_router.journal import (
    CONFIRMATIONS, POSTGRES_SCHEMA, POSTINGS, Accepted, Journal, open_store, outbox_payment_id)
from paymesh.postgres import connect, migrate


@pytest.fixture
async def replicas(tmp_path, postgres_url):
    """Two journals on one database: what two router processes on one PostgreSQL hold."""
    environ = {"PAYMESH_PAYMENT_ROUTER_DATABASE_URL": postgres_url}
    pair = [Journal(open_store(tmp_path, environ)), Journal(open_store(tmp_path, environ))]
    yield pair
    for journal in pair:
        await journal.close()


def payment(n: int, status=types_pb2.PAYMENT_STATUS_APPLIED) -> payments_pb2.Payment:
    return payments_pb2.Payment(payment_id=f"PAY-{n:04d}", channel=types_pb2.CHANNEL_ATM, loan_id="CSH-000001",
                                loan_type=types_pb2.LOAN_TYPE_CASH, status=status, business_date="2026-12-03")


def rows_of(p: payments_pb2.Payment, suffix: str = "") -> list[tuple[str, str, bytes, str]]:
    """A result's outbox rows as the router writes them: its posting and its confirmation."""
    posting = ledger_pb2.Posting(posting_id=f"POST-{p.payment_id}{suffix}", business_date="2026-12-03",
                                 payment_id=p.payment_id, entries=[ledger_pb2.LedgerEntry(entry_id="e:0")])
    confirmation = confirmations_pb2.Confirmation(payment_id=p.payment_id, status=p.status)
    return [(POSTINGS, posting.posting_id, posting.SerializeToString(), ""),
            (CONFIRMATIONS, f"{p.payment_id}{suffix}", confirmation.SerializeToString(), "")]


async def record(journal: Journal, payments: list[payments_pb2.Payment], hold: bool = True, suffix: str = "") -> None:
    await journal.accept([Accepted(p, "hash") for p in payments])
    for p in payments:
        await journal.record(p, rows_of(p, suffix), hold=hold)


async def test_a_replicas_rows_are_its_own_to_send_and_the_other_claims_none(replicas):
    first, second = replicas
    await record(first, [payment(n) for n in range(5)])
    assert await second.claim(CONFIRMATIONS, 0, 100) == []
    page = await first.claim(CONFIRMATIONS, 0, 100)
    assert [key for _, key, _, _ in page] == [f"PAY-{n:04d}" for n in range(5)]
    # Past what it read (its cursor), it holds nothing more to send.
    assert await first.claim(CONFIRMATIONS, page[-1][0], 100) == []
    assert await first.undelivered() == 10 and await second.undelivered() == 0


async def test_rows_free_to_any_are_each_claimed_by_one_replica_at_a_time(replicas):
    first, second = replicas
    await record(first, [payment(n) for n in range(400)], hold=False)  # e.g. corrections, or rows replayed

    async def forward(journal: Journal) -> list[str]:
        """A forwarder's reads: page after page, each after the last one's last row."""
        claimed, after_id = [], 0
        while page := await journal.claim(POSTINGS, after_id, 50):
            claimed += [key for _, key, _, _ in page]
            after_id = page[-1][0]
        return claimed

    by_first, by_second = await asyncio.gather(forward(first), forward(second))
    claimed = by_first + by_second
    assert len(claimed) == len(set(claimed)) == 400, "every row claimed, none by both"


async def test_a_dead_replicas_rows_are_claimed_by_another_once_the_lease_lapses(replicas, monkeypatch):
    monkeypatch.setattr(journal_module, "CLAIM_LEASE_SECONDS", 1.0)
    first, second = replicas
    await record(first, [payment(n) for n in range(3)])
    written = time.monotonic()
    # The first replica "dies" here, holding its rows; the second asks until it has them all.
    page: list = []
    while len(page) < 3:
        assert time.monotonic() - written < 5.0, "the lease never lapsed"
        await asyncio.sleep(0.05)
        page += await second.claim(POSTINGS, page[-1][0] if page else 0, 100)
    taken_after = time.monotonic() - written
    assert sorted(key for _, key, _, _ in page) == [f"POST-PAY-{n:04d}" for n in range(3)]
    assert 0.9 <= taken_after < 2.0, taken_after
    # Now the second's for a lease: the first, back, claims none of them.
    assert await first.claim(POSTINGS, 0, 100) == []
    await second.renew([row[0] for row in page])
    await asyncio.sleep(0.6)
    await second.renew([row[0] for row in page])
    await asyncio.sleep(0.6)
    assert await first.claim(POSTINGS, 0, 100) == [], "a renewed claim does not lapse"


async def test_a_reversal_is_claimable_only_once_its_result_is_delivered(replicas):
    first, second = replicas
    paid = payment(1)
    await record(first, [paid])
    (result,) = await first.claim(CONFIRMATIONS, 0, 100)  # in flight to confirmations
    reversed_ = payment(1, types_pb2.PAYMENT_STATUS_REVERSED)
    await first.record(reversed_, rows_of(reversed_, ":reversed"), hold=False)
    assert await second.claim(CONFIRMATIONS, 0, 100) == [], "the result still waits for its peer"
    assert await first.claim(CONFIRMATIONS, result[0], 100) == []
    await first.done([(CONFIRMATIONS, [result[1]], {})])
    (reversal,) = await second.claim(CONFIRMATIONS, 0, 100)
    assert reversal[1] == f"{paid.payment_id}:reversed"
    # Per topic: the postings' reversal waits for the result's posting alike.
    assert [key for _, key, _, _ in await second.claim(POSTINGS, 0, 100)] == []
    assert [key for _, key, _, _ in await first.claim(POSTINGS, 0, 100)] == [f"POST-{paid.payment_id}"]


async def test_the_database_names_a_rows_payment_as_the_router_does(replicas):
    first, _ = replicas
    payments = [payment(n) for n in range(3)]
    await record(first, payments)
    long_id = "PAY-" + "x" * 300  # a length that takes a two-byte varint
    posting = ledger_pb2.Posting(posting_id="P" * 200, business_date="2026-12-03", payment_id=long_id,
                                 channel=types_pb2.CHANNEL_ATM, loan_type=types_pb2.LOAN_TYPE_CASH,
                                 entries=[ledger_pb2.LedgerEntry(entry_id="e:0", account="1" * 20)])
    await first.record(payment(9), [(POSTINGS, posting.posting_id, posting.SerializeToString(), ""),
                                    (CONFIRMATIONS, f"{long_id}:R2", b"", "")])
    rows = await first._store.run(lambda c: c.execute(
        "SELECT topic, item_key, body, payment_id FROM outbox ORDER BY id").fetchall())
    assert len(rows) == 8
    for topic, key, body, payment_id in rows:
        assert payment_id == outbox_payment_id(topic, key, bytes(body)), (topic, key)
    assert {row[3] for row in rows} == {p.payment_id for p in payments} | {long_id}


async def test_a_replica_that_stops_releases_its_claims_to_the_others_at_once(replicas):
    first, second = replicas
    await record(first, [payment(n) for n in range(3)])
    assert await second.claim(POSTINGS, 0, 100) == []
    await first.release()
    assert [key for _, key, _, _ in await second.claim(POSTINGS, 0, 100)] == [f"POST-PAY-{n:04d}" for n in range(3)]


async def test_rows_waiting_from_before_the_migration_get_their_payment_and_are_free_to_claim(
        tmp_path, postgres_url):
    before = tmp_path / "schema-before-claims"
    before.mkdir()
    shutil.copy(POSTGRES_SCHEMA / "0001_journal.sql", before)
    connection = connect(postgres_url)
    migrate(connection, before)
    old = [row for n in range(3) for row in rows_of(payment(n))]
    connection.executemany("INSERT INTO outbox (topic, item_key, body, traceparent) VALUES (?, ?, ?, ?)", old)
    connection.close()
    journal = Journal(open_store(tmp_path, {"PAYMESH_PAYMENT_ROUTER_DATABASE_URL": postgres_url}))  # migrates
    try:
        rows = await journal._store.run(lambda c: c.execute(
            "SELECT topic, item_key, body, payment_id, claimed_by FROM outbox ORDER BY id").fetchall())
        assert [(row[3], row[4]) for row in rows] == [
            (outbox_payment_id(row[0], row[1], bytes(row[2])), None) for row in rows]
        assert {row[3] for row in rows} == {f"PAY-{n:04d}" for n in range(3)}
        assert len(await journal.claim(POSTINGS, 0, 100)) == 3
    finally:
        await journal.close()
