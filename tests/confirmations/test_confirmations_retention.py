"""Dropping an archived day from the confirmation log: its confirmations go, sequences never move
back, a subscriber resuming inside the dropped range is told where to resume, a day whose webhooks
are still pending is refused whole, and only the operator may ask. On both backends: on PostgreSQL the
log is partitioned by booking date, and the drop is the day's partition's."""

import shutil

import grpc
import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client, log
from paymesh.errors import error_info
from paymesh.postgres import PostgresStore, day_partition
from tests.confirmations.support import (ATM, OPERATOR, ROUTER, Receiver, channel, create_endpoint,
                                         origin, serving)

DAY, NEXT_DAY, THIRD_DAY = "2026-11-27", "2026-11-30", "2026-12-01"


def confirmations(prefix: str, count: int, business_date: str):
    return [client.confirmation(f"{prefix}{n}", types_pb2.CHANNEL_ATM, business_date=business_date)
            for n in range(count)]


async def drop(address, settings, business_date: str, identity=OPERATOR) -> pb.DropBusinessDayResponse:
    async with channel(address, settings, identity) as ch:
        return await client.stub(ch).DropBusinessDay(pb.DropBusinessDayRequest(business_date=business_date),
                                                     timeout=10)


async def test_a_dropped_day_leaves_the_log_and_a_resume_inside_it_is_refused(settings, database_url):
    async with serving(settings, database_url) as (address, _):
        async with channel(address, settings, ROUTER) as router:
            await client.publish(client.stub(router), confirmations("a", 50, DAY) + confirmations("b", 10, NEXT_DAY))
            dropped = (await drop(address, settings, DAY)).dropped
            assert dropped.dropped_count == 50
            # SQLite: the day's pages freed for reuse; PostgreSQL: the day's partition dropped (not a DELETE's rows)
            assert dropped.store_bytes_after < dropped.store_bytes_before
            assert (await drop(address, settings, DAY)).dropped.dropped_count == 0
            (ack,) = await client.publish(client.stub(router), confirmations("c", 1, NEXT_DAY))
            assert ack.sequence == 61, "sequences never move back"

        async with channel(address, settings, ATM) as atm:
            stub = client.stub(atm)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Subscribe(pb.SubscribeRequest(start_position=pb.START_POSITION_AFTER_SEQUENCE,
                                                         after_sequence=10)).read()
            assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
            info = error_info(refused.value)
            assert (info.reason, info.metadata["resume_after_sequence"]) == ("CURSOR_OUT_OF_RANGE", "50")
            assert "archive" in refused.value.details()
            resumed = await client.collect(stub.Subscribe(pb.SubscribeRequest(
                start_position=pb.START_POSITION_AFTER_SEQUENCE, after_sequence=50)), 11)
            assert [c.sequence for c in resumed] == list(range(51, 62))
            oldest_kept = await client.collect(stub.Subscribe(pb.SubscribeRequest(
                start_position=pb.START_POSITION_BEGINNING)), 1)
            assert oldest_kept[0].sequence == 51

        with pytest.raises(grpc.aio.AioRpcError) as channel_asks:
            await drop(address, settings, NEXT_DAY, identity=ATM)
        assert channel_asks.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_day_with_webhooks_still_pending_is_not_dropped(settings, database_url):
    receiver = Receiver(always_fail=True)
    async with receiver as url, serving(settings, database_url, webhook_allowlist=origin(url),
                                        webhook_max_attempts=1000, webhook_base_delay=5.0) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            await create_endpoint(client.stub(atm), url)
            await client.publish(client.stub(router), confirmations("w", 5, THIRD_DAY))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await drop(address, settings, THIRD_DAY)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_info(refused.value).reason == "BUSINESS_DAY_NOT_FINAL"
            assert "5 webhook deliveries" in refused.value.details()
        async with channel(address, settings, OPERATOR) as operator:
            totals = await client.stub(operator).SummarizeConfirmations(
                pb.SummarizeConfirmationsRequest(business_date=THIRD_DAY), timeout=10)
            assert sum(t.count for t in totals.totals) == 5, "nothing dropped"


async def test_a_log_of_the_unpartitioned_schema_moves_into_day_partitions(tmp_path, postgres_url):
    """Migration 0002 on a database left by 0001: each day's confirmations in its partition with its
    sequence; the same (payment, status) again is the duplicate it was; the next sequence follows."""
    earlier = tmp_path / "schema"
    earlier.mkdir()
    shutil.copy(log.POSTGRES_SCHEMA_DIR / "0001_confirmation_log.sql", earlier / "0001_confirmation_log.sql")
    first = confirmations("m", 3, DAY) + confirmations("n", 2, NEXT_DAY)
    store = PostgresStore(postgres_url, earlier)
    await store.transaction(lambda connection: connection.executemany(  # as 0001's append wrote them
        "INSERT INTO confirmation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(n, c.payment_id, c.status, c.channel, c.loan_type, c.business_date, "PEN", 1000, c.SerializeToString())
         for n, c in enumerate(first, start=1)]))
    store.close()

    store = PostgresStore(postgres_url, log.POSTGRES_SCHEMA_DIR)
    try:
        assert store.schema_version == 2
        partitions = await store.run(lambda connection: connection.execute(
            "SELECT c.relname, count(f.sequence) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " LEFT JOIN confirmation f ON f.tableoid = c.oid WHERE i.inhparent = 'confirmation'::regclass"
            " GROUP BY 1 ORDER BY 1").fetchall())
        assert partitions == [(day_partition("confirmation", DAY), 3), (day_partition("confirmation", NEXT_DAY), 2)]
        (again,) = await store.transaction(log.append, [[first[1], *confirmations("o", 1, THIRD_DAY)]])
        assert again.acks == [(2, True), (6, False)]
        assert [c.sequence for c in await store.run(log.day_confirmations, DAY)] == [1, 2, 3]
    finally:
        store.close()
