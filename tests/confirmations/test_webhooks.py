"""Webhooks against a real local HTTP server: Standard Webhooks signatures verified
with the standardwebhooks package, retries with backoff, dead letter, replay."""

import asyncio
import json

import grpc
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb, confirmations_pb2
from confirmations import client, webhooks
from paymesh.errors import error_info
from tests.confirmations.support import (ATM, ROUTER, STORE, Receiver, channel, create_endpoint, eventually, origin,
                                         serving)


async def test_each_confirmation_is_posted_once_signed_and_verifiable(settings, database_url):
    items = [client.confirmation(f"p{i}", (types_pb2.CHANNEL_ATM, types_pb2.CHANNEL_STORE)[i % 2], 100 + i)
             for i in range(30)]
    receiver = Receiver()
    async with receiver as url, serving(settings, database_url, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoint = await create_endpoint(service, url)
            retried = await create_endpoint(service, url)  # the same request_id: the same endpoint
            listed = await service.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest())
            await client.publish(client.stub(router), items)

            async def all_arrived():
                return len(receiver.accepted) == 15
            await eventually(all_arrived)
            await asyncio.sleep(0.3)  # nothing more (no store confirmation, no second copy) arrives
    assert endpoint.signing_secret.startswith("whsec_") and retried.endpoint_id == endpoint.endpoint_id
    assert [e.endpoint_id for e in listed.endpoints] == [endpoint.endpoint_id]
    assert listed.endpoints[0].signing_secret == ""
    verifier, impostor = Webhook(endpoint.signing_secret), Webhook(webhooks.new_secret())
    payment_ids = []
    for headers, body in receiver.accepted.values():
        payload = verifier.verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            impostor.verify(body, headers)
        assert payload["type"] == "payment.applied" and payload["data"]["channel"] == "CHANNEL_ATM"
        assert headers["webhook-id"] == f"msg_{payload['data']['sequence']}"
        payment_ids.append(payload["data"]["payment_id"])
    assert sorted(payment_ids) == sorted(f"p{i}" for i in range(0, 30, 2))
    assert set(receiver.attempts.values()) == {1}


async def test_a_receiver_failing_the_first_three_attempts_still_gets_it(settings):
    receiver = Receiver(fail_first=3, stall_attempt=2)
    async with receiver as url, serving(settings, webhook_timeout=0.5,
                                        webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoint = await create_endpoint(service, url)
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

            async def delivered():
                listed = await service.ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(
                    endpoint_id=endpoint.endpoint_id, status=confirmations_pb2.DELIVERY_STATUS_DELIVERED))
                return listed.deliveries
            await eventually(delivered)
            delivery = (await delivered())[0]
    assert receiver.attempts["msg_1"] == 4 and delivery.attempts == 4 and delivery.last_error == ""
    headers, body = receiver.accepted["msg_1"]
    assert json.loads(body) == Webhook(endpoint.signing_secret).verify(body, headers)


async def test_a_receiver_always_failing_ends_in_dead_letter_then_replay_delivers(settings, database_url):
    receiver = Receiver(always_fail=True)
    async with receiver as url, serving(settings, database_url, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoint = await create_endpoint(service, url)
            await client.publish(client.stub(router), [client.confirmation(f"p{i}", types_pb2.CHANNEL_ATM)
                                                       for i in range(3)])

            async def in_state(status):
                listed = await service.ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(
                    endpoint_id=endpoint.endpoint_id, status=status))
                return len(listed.deliveries) == 3 and listed.deliveries
            await eventually(lambda: in_state(confirmations_pb2.DELIVERY_STATUS_DEAD_LETTER))
            dead = await in_state(confirmations_pb2.DELIVERY_STATUS_DEAD_LETTER)
            receiver.always_fail = False
            replayed = await service.ReplayWebhookDeliveries(
                pb.ReplayWebhookDeliveriesRequest(endpoint_id=endpoint.endpoint_id))
            await eventually(lambda: in_state(confirmations_pb2.DELIVERY_STATUS_DELIVERED))
    assert all(d.attempts == 4 and d.last_error == "HTTP 503" for d in dead)
    assert replayed.replayed_count == 3
    assert sorted(receiver.accepted) == ["msg_1", "msg_2", "msg_3"]
    assert all(count == 5 for count in receiver.attempts.values())


@pytest.mark.parametrize("url", [
    "", "not a url", "ftp://127.0.0.1/hook", "http://bank.example.com/hook", "https://evil.example/hook",
    "https://user:secret@127.0.0.1/hook", "https://127.0.0.1/hook#part", "https://127.0.0.1:99999/hook",
    "https:///hook", "https://" + "a" * 2050,
])
async def test_bad_endpoint_urls_are_refused(settings, url):
    async with serving(settings) as (address, _):
        async with channel(address, settings, ATM) as atm:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await create_endpoint(client.stub(atm), url)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "ENDPOINT_URL_INVALID"


async def test_allowed_hosts_come_from_configuration_and_endpoints_belong_to_their_channel(settings):
    async with serving(settings, webhook_allowlist=("https://*.bank.example:443",)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, STORE) as store:
            endpoint = await create_endpoint(client.stub(atm), "https://hooks.bank.example/in")
            with pytest.raises(grpc.aio.AioRpcError) as loopback:
                await create_endpoint(client.stub(atm), "https://127.0.0.1/in", "r2")
            with pytest.raises(grpc.aio.AioRpcError) as reused:
                await create_endpoint(client.stub(atm), "https://other.bank.example/in")  # request_id r1 again
            errors = []
            for call in (client.stub(store).DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(
                             endpoint_id=endpoint.endpoint_id)),
                         client.stub(store).ReplayWebhookDeliveries(pb.ReplayWebhookDeliveriesRequest(
                             endpoint_id=endpoint.endpoint_id))):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                errors.append(raised.value)
            await client.stub(atm).DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(
                endpoint_id=endpoint.endpoint_id))
            left = await client.stub(atm).ListWebhookEndpoints(pb.ListWebhookEndpointsRequest())
    assert error_info(loopback.value).reason == "ENDPOINT_URL_INVALID"
    assert (reused.value.code(), error_info(reused.value).reason) == (grpc.StatusCode.ALREADY_EXISTS,
                                                                     "IDEMPOTENCY_KEY_REUSED")
    assert [(e.code(), error_info(e).reason) for e in errors] == [(grpc.StatusCode.NOT_FOUND, "ENDPOINT_NOT_FOUND")] * 2
    assert list(left.endpoints) == []


async def test_pending_deliveries_survive_a_restart(settings, database_url):
    receiver = Receiver()
    async with receiver as url:
        # (webhook_concurrency=0: a dispatcher that sends nothing)
        async with serving(settings, database_url, webhook_concurrency=0,
                           webhook_allowlist=origin(url)) as (address, _):
            async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
                endpoint = await create_endpoint(client.stub(atm), url)
                await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])
        assert receiver.attempts == {}
        async with serving(settings, database_url, webhook_allowlist=origin(url)) as _:
            async def arrived():
                return "msg_1" in receiver.accepted
            await eventually(arrived)
    headers, body = receiver.accepted["msg_1"]
    assert Webhook(endpoint.signing_secret).verify(body, headers)["data"]["payment_id"] == "p1"


def test_a_revision_is_sent_as_payment_revised_with_both_allocations():
    """The reversal of an earlier payment of its loan revised this one: the channel's webhook says so."""
    revised = client.confirmation("PAY-2", types_pb2.CHANNEL_AGENT, 100_00)
    revised.revision, revised.reversed_payment_id = 1, "PAY-1"
    revised.allocation_before.interest_minor, revised.allocation.principal_minor = 100_00, 100_00
    event = json.loads(webhooks.payload_of(revised))
    assert event["type"] == "payment.revised"
    assert event["data"]["revision"] == 1 and event["data"]["reversed_payment_id"] == "PAY-1"
    assert event["data"]["allocation_before"]["interest_minor"] == "10000"
    revised.revision = 0
    assert json.loads(webhooks.payload_of(revised))["type"] == "payment.applied"
