"""Subscriptions: a channel sees only its own confirmations, filters, start positions,
durable consumers, heartbeats, and a slow subscriber that slows no one."""

import asyncio

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from bank.confirmations.v1.confirmations_pb2 import ConfirmationFilter
from confirmations import client
from tests.confirmations.support import ATM, ROUTER, STORE, channel, serving

Start = pb.StartPosition
CASH, MORTGAGE = types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE
ATM_VALUE, STORE_VALUE = types_pb2.CHANNEL_ATM, types_pb2.CHANNEL_STORE


def mixed(count: int) -> list:
    """Alternating ATM and store confirmations, loan types and statuses varying."""
    statuses = (types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REJECTED)
    return [client.confirmation(f"p{i}", (ATM_VALUE, STORE_VALUE)[i % 2], 100 + i,
                                loan_type=(CASH, MORTGAGE)[i // 2 % 2], status=statuses[i // 4 % 2])
            for i in range(count)]


async def test_a_channel_sees_only_its_own_confirmations_live_and_from_the_log(settings, database_url):
    async with serving(settings, database_url) as (address, _):
        async with channel(address, settings, ROUTER) as router, channel(address, settings, ATM) as atm, \
                channel(address, settings, STORE) as store:
            live_atm = client.stub(atm).Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
            live_store = client.stub(store).Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
            await asyncio.sleep(0.3)  # both registered before the first publish
            await client.publish(client.stub(router), mixed(40))
            got_atm, got_store = await asyncio.gather(client.collect(live_atm, 20), client.collect(live_store, 20))
            from_log = await client.collect(client.stub(atm).Subscribe(
                pb.SubscribeRequest(start_position=Start.START_POSITION_BEGINNING)), 20)
            live_atm.cancel()
            live_store.cancel()
    assert [c.payment_id for c in got_atm] == [f"p{i}" for i in range(0, 40, 2)]
    assert [c.payment_id for c in got_store] == [f"p{i}" for i in range(1, 40, 2)]
    assert {c.channel for c in got_atm + from_log} == {ATM_VALUE}
    assert [c.sequence for c in from_log] == [c.sequence for c in got_atm]


async def test_filters_start_positions_and_heartbeats(settings):
    async with serving(settings, heartbeat_seconds=0.1) as (address, _):
        async with channel(address, settings, ROUTER) as router, channel(address, settings, ATM) as atm:
            acks = await client.publish(client.stub(router), mixed(40))
            service = client.stub(atm)
            wanted = ConfirmationFilter(loan_types=[MORTGAGE], statuses=[types_pb2.PAYMENT_STATUS_REJECTED])
            filtered = service.Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_BEGINNING,
                                                             filter=wanted))
            got = await client.collect(filtered, 5)
            after = service.Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_AFTER_SEQUENCE,
                                                          after_sequence=acks[29].sequence))
            tail = await client.collect(after, 5)
            idle = service.Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
            first = await asyncio.wait_for(idle.read(), 5)
            for call in (filtered, after, idle):
                call.cancel()
    assert all(c.loan_type == MORTGAGE and c.status == types_pb2.PAYMENT_STATUS_REJECTED for c in got)
    assert [c.payment_id for c in got] == ["p6", "p14", "p22", "p30", "p38"]
    assert [c.payment_id for c in tail] == ["p30", "p32", "p34", "p36", "p38"]
    assert first.WhichOneof("event") == "heartbeat" and first.heartbeat.head_sequence == 40


async def test_a_durable_consumer_resumes_after_its_acknowledged_position(settings, database_url):
    async with serving(settings, database_url) as (address, _):
        async with channel(address, settings, ROUTER) as router, channel(address, settings, ATM) as atm:
            await client.publish(client.stub(router), mixed(20))
            service = client.stub(atm)
            call = service.Subscribe(pb.SubscribeRequest(consumer_name="ledger-sync",
                                                         start_position=Start.START_POSITION_BEGINNING))
            first = await client.collect(call, 4)
            call.cancel()
            ack = await service.AcknowledgeConfirmations(
                pb.AcknowledgeConfirmationsRequest(consumer_name="ledger-sync", sequence=first[-1].sequence))
            stale = await service.AcknowledgeConfirmations(  # acks never move a consumer back
                pb.AcknowledgeConfirmationsRequest(consumer_name="ledger-sync", sequence=1))
            # a later subscription with a start position keeps the consumer's acknowledged place
            service.Subscribe(pb.SubscribeRequest(consumer_name="ledger-sync",
                                                  start_position=Start.START_POSITION_NOW)).cancel()
            resumed = service.Subscribe(pb.SubscribeRequest(consumer_name="ledger-sync"))
            rest = await client.collect(resumed, 6)
            resumed.cancel()
    assert ack.acknowledged_sequence == stale.acknowledged_sequence == first[-1].sequence == 7
    assert [c.payment_id for c in first + rest] == [f"p{i}" for i in range(0, 20, 2)]


async def test_a_subscriber_that_does_not_read_slows_neither_the_publisher_nor_others(settings):
    count = 6000
    async with serving(settings, subscriber_buffer=50) as (address, service):
        async with channel(address, settings, ROUTER) as router, channel(address, settings, ATM) as atm, \
                channel(address, settings, ATM) as stalled_channel:
            reader = client.stub(atm).Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
            stalled = client.stub(stalled_channel).Subscribe(
                pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
            await asyncio.sleep(0.3)
            items = [client.confirmation(f"p{i}", ATM_VALUE) for i in range(count)]
            publishing = asyncio.ensure_future(client.publish(client.stub(router), items, per_message=50))
            live = await client.collect(reader, count, timeout=60)
            acks = await asyncio.wait_for(publishing, 30)
            late = await client.collect(stalled, count, timeout=60)  # now it reads: it catches up from the log
            reader.cancel()
            stalled.cancel()
        overflows = service.fanout.overflows
    assert len(acks) == count
    expected = [f"p{i}" for i in range(count)]
    assert [c.payment_id for c in live] == expected
    assert [c.payment_id for c in late] == expected
    assert overflows >= 1  # the stalled subscriber did fall behind and went back to the log
