"""Dropping an archived day from the confirmation log: its confirmations go, sequences never move
back, a subscriber resuming inside the dropped range is told where to resume, a day whose webhooks
are still pending is refused whole, and only the operator may ask."""

import grpc
import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client
from paymesh.errors import error_info
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
            if database_url is None:  # PostgreSQL reuses a deleted row's space after a vacuum; the file stays
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
