"""What one channel may hold at once (OWASP API4: unrestricted resource consumption): open
subscriptions, durable consumers and webhook endpoints, each over its limit refused with
RESOURCE_EXHAUSTED and a QuotaFailure naming it, before it holds any memory; another channel
is not affected, and a slot freed is a slot again."""

import asyncio

import grpc
import pytest

from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client
from paymesh.errors import error_info, quota_violations
from tests.confirmations.support import ATM, STORE, channel, serving

Start = pb.StartPosition


async def refusal(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


def assert_over_quota(error: grpc.aio.AioRpcError, limit: str) -> None:
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info = error_info(error)
    assert info is not None and info.reason == "QUOTA_EXCEEDED"
    # Named as the certificate names it: it said "channel 3", the enum's number.
    assert quota_violations(error) == [("channel atm", limit)]


async def test_a_channel_holds_at_most_its_subscriptions_and_another_is_not_affected(settings):
    """One ATM certificate opened 4,000 idle subscriptions: nothing refused them (23 KB each)."""
    async with serving(settings, max_subscriptions=2) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, STORE) as store:
            def subscribe(ch):
                return client.stub(ch).Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
            held = [subscribe(atm), subscribe(atm)]
            for call in held:  # each is open: its first heartbeat came
                await call.read()
            over = subscribe(atm)
            assert_over_quota(await refusal(over.read()), "at most 2 open Subscribe calls at once")
            other = subscribe(store)
            await other.read()  # the store's channel subscribes as usual
            held[0].cancel()
            for _ in range(50):  # the server notices the cancel and frees its slot
                await asyncio.sleep(0.05)
                again = subscribe(atm)
                try:
                    await again.read()
                    break
                except grpc.aio.AioRpcError:
                    continue
            else:
                pytest.fail("a subscription ended freed no slot")
            for call in (held[1], other, again):
                call.cancel()


async def test_a_channel_has_at_most_its_durable_consumers(settings):
    async with serving(settings, max_consumers=2) as (address, _):
        async with channel(address, settings, ATM) as atm:
            async def consumer(name):
                call = client.stub(atm).Subscribe(pb.SubscribeRequest(
                    consumer_name=name, start_position=Start.START_POSITION_BEGINNING))
                try:
                    await call.read()
                finally:
                    call.cancel()
            await consumer("switch-a")
            await consumer("switch-b")
            assert_over_quota(await refusal(consumer("switch-c")), "at most 2 durable consumers")
            await consumer("switch-a")  # one it has already: no new one


async def test_a_channel_has_at_most_its_webhook_endpoints(settings):
    async with serving(settings, max_webhook_endpoints=2,
                       webhook_allowlist=("https://*.bank.example:443",)) as (address, _):
        async with channel(address, settings, ATM) as atm:
            stub = client.stub(atm)

            def create(request_id):
                return stub.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(
                    request_id=request_id, url=f"https://hooks.bank.example/{request_id}"))
            first = (await create("r1")).endpoint
            await create("r2")
            assert_over_quota(await refusal(create("r3")), "at most 2 live webhook endpoints")
            assert (await create("r1")).endpoint.endpoint_id == first.endpoint_id  # a retry is no new endpoint
            await stub.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(endpoint_id=first.endpoint_id))
            assert (await create("r3")).endpoint.endpoint_id  # a deleted one frees its place
