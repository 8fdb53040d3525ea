"""Dropping a closed, archived day from the bridge's queue, on a real queue file: its postings go,
each posting id stays with its digest and standing, so one sent again is answered where it stood and
never queued (nor posted) twice; an open day is refused whole. On both backends (bridge_store): on
PostgreSQL the queue is partitioned by booking date, and the drop is the day's partition's."""

import shutil

import pytest

from bank.common.v1 import errors_pb2
from mainframe_bridge import queue_store, records
from mainframe_bridge.queue_store import Queued
from paymesh.business_calendar import bank_calendar
from paymesh.errors import Refused
from paymesh.postgres import PostgresStore, day_partition

DAY, NEXT_DAY = "2026-11-27", "2026-11-30"


def queued(posting_id: str, day: str = DAY, digest: bytes = b"d") -> Queued:
    entries = (records.Entry(f"{posting_id}:1", "110504", "D", "PEN", 1000),
               records.Entry(f"{posting_id}:2", "140101", "C", "PEN", 1000))
    frame = records.encode_posting(records.PostingRecord(posting_id, records.date_number(day), f"pay-{posting_id}",
                                                         3, 1, entries))
    return Queued(posting_id=posting_id, business_date=day, channel=3, loan_type=1, reversal=False, currency="PEN",
                  amount=1000, digest=digest, frame=frame)


async def test_a_dropped_days_posting_sent_again_is_answered_never_queued_again(bridge_store):
    calendar = bank_calendar()
    await bridge_store.transaction(queue_store.enqueue, [queued(f"MOV-{n}") for n in range(100)]
                                   + [queued("MOV-next", NEXT_DAY)], calendar)
    await bridge_store.transaction(queue_store.settle, [(seq, queue_store.Standing(queue_store.POSTED, f"REF{seq}"))
                                                        for seq in range(1, 102)])
    await bridge_store.transaction(queue_store.begin_close, DAY)
    with pytest.raises(Refused) as still_open:
        await bridge_store.transaction(queue_store.drop_day, DAY, "2026-08-29")
    assert still_open.value.reason == errors_pb2.ERROR_REASON_BUSINESS_DAY_NOT_FINAL
    await bridge_store.transaction(queue_store.finish_close, DAY, b"")

    dropped = await bridge_store.transaction(queue_store.drop_day, DAY, "2026-08-29")
    assert (dropped.dropped_count, dropped.kept_key_count, dropped.forgotten_key_count) == (100, 100, 0)
    # SQLite: the day's pages freed for reuse; PostgreSQL: the day's partition dropped (a DELETE would not show it)
    assert dropped.store_bytes_after < dropped.store_bytes_before
    assert await bridge_store.run(queue_store.day_postings, DAY) == []
    assert len(await bridge_store.run(queue_store.day_postings, NEXT_DAY)) == 1

    again = await bridge_store.transaction(queue_store.enqueue, [queued("MOV-7"), queued("MOV-8", digest=b"other")],
                                           calendar)
    assert (again[0].status, again[0].reference) == (queue_store.POSTED, "REF8")
    assert again[1].rejection_reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert await bridge_store.run(queue_store.next_queued, 0, 10) == [], "nothing queued again"
    assert (await bridge_store.run(queue_store.standing, "MOV-7")).status == queue_store.POSTED


async def test_the_partitioned_queue_keeps_each_posting_id_once_across_its_days(bridge_store):
    """The same posting id again, booked in another day (its own sealed since), is answered from its
    first row, never queued twice; the same id with another digest is refused (on PostgreSQL no unique
    key stands behind this: the lookup does)."""
    calendar = bank_calendar()
    await bridge_store.transaction(queue_store.enqueue, [queued("MOV-1"), queued("MOV-2")], calendar)
    await bridge_store.transaction(queue_store.begin_close, DAY)
    await bridge_store.transaction(queue_store.seal, DAY)
    again = await bridge_store.transaction(
        queue_store.enqueue, [queued("MOV-1"), queued("MOV-2", digest=b"other"), queued("MOV-3")], calendar)
    assert [a.status for a in again] == [queue_store.QUEUED, queue_store.REJECTED, queue_store.QUEUED]
    assert again[1].rejection_reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert [p for _, p, _ in await bridge_store.run(queue_store.next_queued, 0, 10)] == ["MOV-1", "MOV-2", "MOV-3"]
    late = await bridge_store.run(queue_store.day_postings, NEXT_DAY)
    assert [(booked, original) for _, _, booked, original, _ in late] == [(NEXT_DAY, DAY)], "MOV-3, late, once"


async def test_a_queue_of_the_unpartitioned_schema_moves_into_day_partitions(tmp_path, postgres_url):
    """Migration 0003 on a database left by 0002: each day's postings in its partition, with its seq;
    the next seq after the last one drawn; the posting ids still answered once."""
    earlier = tmp_path / "schema"
    earlier.mkdir()
    for name in ("0001_postings_and_business_days.sql", "0002_end_of_day_file_made.sql"):
        shutil.copy(queue_store.POSTGRES_SCHEMA_DIR / name, earlier / name)
    store = PostgresStore(postgres_url, earlier)
    rows = [(f"MOV-{n}", DAY if n < 3 else NEXT_DAY, b"d", queued(f"MOV-{n}").frame) for n in range(5)]

    def write_as_0002(connection) -> None:
        connection.executemany("INSERT INTO postings (posting_id, business_date, channel, loan_type, reversal,"
                               " currency, amount, digest, frame, status, queued_at) VALUES"
                               " (?, ?, 3, 1, 0, 'PEN', 1000, ?, ?, 1, 0)", rows)
        connection.execute("DELETE FROM postings WHERE posting_id = 'MOV-4'")  # its number drawn, then gone

    await store.transaction(write_as_0002)
    store.close()

    store = PostgresStore(postgres_url, queue_store.POSTGRES_SCHEMA_DIR)
    try:
        assert store.schema_version == 3
        partitions = await store.run(lambda connection: connection.execute(
            "SELECT c.relname, count(p.seq) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " LEFT JOIN postings p ON p.tableoid = c.oid WHERE i.inhparent = 'postings'::regclass"
            " GROUP BY 1 ORDER BY 1").fetchall())
        assert partitions == [(day_partition("postings", DAY), 3), (day_partition("postings", NEXT_DAY), 1)]
        again = await store.transaction(queue_store.enqueue, [queued("MOV-0"), queued("MOV-1", digest=b"other"),
                                                              queued("MOV-new", NEXT_DAY)], bank_calendar())
        assert again[0].status == queue_store.QUEUED and again[0].queued_at == 0, "MOV-0 answered, not queued"
        assert again[1].rejection_reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
        moved = await store.run(queue_store.next_queued, 0, 10)
        assert [(seq, posting_id) for seq, posting_id, _ in moved] == [
            (1, "MOV-0"), (2, "MOV-1"), (3, "MOV-2"), (4, "MOV-3"), (6, "MOV-new")], "5: drawn by MOV-4, never again"
        assert [frame for _, _, frame in moved[:4]] == [row[3] for row in rows[:4]]
    finally:
        store.close()
