"""Dropping a closed, archived day from the bridge's queue, on a real queue file: its postings go,
each posting id stays with its digest and standing, so one sent again is answered where it stood and
never queued (nor posted) twice; an open day is refused whole. On both backends (bridge_store)."""

import pytest

from bank.common.v1 import errors_pb2
from mainframe_bridge import queue_store
from mainframe_bridge.queue_store import Queued
from paymesh.business_calendar import bank_calendar
from paymesh.errors import Refused
from paymesh.sqlite import Store

DAY, NEXT_DAY = "2026-11-27", "2026-11-30"


def queued(posting_id: str, day: str = DAY, digest: bytes = b"d") -> Queued:
    return Queued(posting_id=posting_id, business_date=day, channel=3, loan_type=1, reversal=False, currency="PEN",
                  amount=1000, digest=digest, frame=posting_id.encode().ljust(400, b" "))  # a record's size


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
    if isinstance(bridge_store, Store):  # PostgreSQL reuses a deleted row's space after a vacuum; the file stays
        assert dropped.store_bytes_after < dropped.store_bytes_before
    assert await bridge_store.run(queue_store.day_postings, DAY) == []
    assert len(await bridge_store.run(queue_store.day_postings, NEXT_DAY)) == 1

    again = await bridge_store.transaction(queue_store.enqueue, [queued("MOV-7"), queued("MOV-8", digest=b"other")],
                                           calendar)
    assert (again[0].status, again[0].reference) == (queue_store.POSTED, "REF8")
    assert again[1].rejection_reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert await bridge_store.run(queue_store.next_queued, 0, 10) == [], "nothing queued again"
    assert (await bridge_store.run(queue_store.standing, "MOV-7")).status == queue_store.POSTED
