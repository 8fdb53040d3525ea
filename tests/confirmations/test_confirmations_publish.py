"""Publishing: durable acks with sequences, idempotency by (payment_id, status), malformed
items refused on the stream, only the router may publish, the operator's summary."""

import grpc
import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client
from confirmations.server import open_store
from paymesh.errors import error_info
from tests.confirmations.support import ATM, OPERATOR, ROUTER, STORE, channel, serving

APPLIED, REVERSED = types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REVERSED


async def test_acks_carry_increasing_sequences_and_the_log_holds_them(settings, database_url):
    async with serving(settings, database_url) as (address, _):
        async with channel(address, settings, ROUTER) as ch:
            items = [client.confirmation(f"p{i}", types_pb2.CHANNEL_ATM, 100 + i) for i in range(250)]
            acks = await client.publish(client.stub(ch), items, per_message=40)
    assert [a.payment_id for a in acks] == [f"p{i}" for i in range(250)]
    assert [a.sequence for a in acks] == list(range(1, 251))
    assert not any(a.duplicate or a.HasField("rejection") for a in acks)
    store = open_store(settings.data_dir, {"PAYMESH_CONFIRMATIONS_DATABASE_URL": database_url or ""})
    rows = await store.run(lambda c: c.execute(
        "SELECT count(*), CAST(sum(amount_minor) AS BIGINT), min(sequence), max(sequence) FROM confirmation"
    ).fetchone())
    store.close()
    assert tuple(rows) == (250, sum(100 + i for i in range(250)), 1, 250)


async def test_republishing_is_idempotent_per_payment_and_status(settings, database_url):
    async with serving(settings, database_url) as (address, _):
        async with channel(address, settings, ROUTER) as ch:
            service = client.stub(ch)
            first = await client.publish(service, [client.confirmation("p1", types_pb2.CHANNEL_ATM)])
            again = await client.publish(service, [
                client.confirmation("p1", types_pb2.CHANNEL_ATM),
                client.confirmation("p1", types_pb2.CHANNEL_ATM, status=REVERSED),
                client.confirmation("p1", types_pb2.CHANNEL_ATM, status=REVERSED),
            ])
    assert (first[0].sequence, first[0].duplicate) == (1, False)
    assert [(a.sequence, a.duplicate) for a in again] == [(1, True), (2, False), (2, True)]


async def test_malformed_items_are_rejected_and_the_rest_of_the_message_commits(settings):
    bad = client.confirmation("", types_pb2.CHANNEL_UNSPECIFIED, -5, currency="pen", business_date="2025-02-30",
                              status=types_pb2.PAYMENT_STATUS_ACCEPTED)
    async with serving(settings) as (address, _):
        async with channel(address, settings, ROUTER) as ch:
            acks = await client.publish(client.stub(ch), [client.confirmation("ok", types_pb2.CHANNEL_ATM), bad])
    assert (acks[0].sequence, acks[0].HasField("rejection")) == (1, False)
    rejection = acks[1].rejection
    assert rejection.reason == errors_pb2.ERROR_REASON_INVALID_FIELD
    assert {v.field for v in rejection.field_violations} == {
        "payment_id", "channel", "status", "amount.currency_code", "amount.amount_minor", "business_date"}
    assert acks[1].sequence == 0


async def test_only_the_router_may_publish(settings):
    async with serving(settings) as (address, _):
        async with channel(address, settings, ATM) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.publish(client.stub(ch), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(raised.value).reason == "CALLER_NOT_ALLOWED"


async def test_the_operator_summarizes_a_business_date_per_channel_status_and_currency(settings, database_url):
    items = [
        client.confirmation("a1", types_pb2.CHANNEL_ATM, 1000),
        client.confirmation("a2", types_pb2.CHANNEL_ATM, 250),
        client.confirmation("a2", types_pb2.CHANNEL_ATM, 250, status=REVERSED),
        client.confirmation("a3", types_pb2.CHANNEL_ATM, 700, currency="USD"),
        client.confirmation("s1", types_pb2.CHANNEL_STORE, 99),
        client.confirmation("s2", types_pb2.CHANNEL_STORE, 5, business_date="2025-04-01"),
    ]
    async with serving(settings, database_url) as (address, _):
        async with channel(address, settings, ROUTER) as ch:
            await client.publish(client.stub(ch), items)
        async with channel(address, settings, OPERATOR) as ch:
            summary = await client.stub(ch).SummarizeConfirmations(
                pb.SummarizeConfirmationsRequest(business_date="2025-03-31"))
            with pytest.raises(grpc.aio.AioRpcError) as malformed:
                await client.stub(ch).SummarizeConfirmations(pb.SummarizeConfirmationsRequest(business_date="31/03"))
        async with channel(address, settings, STORE) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await client.stub(ch).SummarizeConfirmations(
                    pb.SummarizeConfirmationsRequest(business_date="2025-03-31"))
    totals = {(t.channel, t.status, t.amount.currency_code): (t.count, t.amount.amount_minor) for t in summary.totals}
    assert totals == {
        (types_pb2.CHANNEL_ATM, APPLIED, "PEN"): (2, 1250),
        (types_pb2.CHANNEL_ATM, APPLIED, "USD"): (1, 700),
        (types_pb2.CHANNEL_ATM, REVERSED, "PEN"): (1, 250),
        (types_pb2.CHANNEL_STORE, APPLIED, "PEN"): (1, 99),
    }
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_rejected_payment_is_confirmed_even_when_its_loan_type_or_amount_was_the_problem(settings):
    refused = client.confirmation("r1", types_pb2.CHANNEL_ATM, -1, currency="",
                                  status=types_pb2.PAYMENT_STATUS_REJECTED, loan_type=types_pb2.LOAN_TYPE_UNSPECIFIED)
    async with serving(settings) as (address, _):
        async with channel(address, settings, ROUTER) as ch:
            acks = await client.publish(client.stub(ch), [refused])
    assert (acks[0].sequence, acks[0].HasField("rejection")) == (1, False)
