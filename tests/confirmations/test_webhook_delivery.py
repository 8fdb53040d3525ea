"""How webhooks are delivered (issue 21), against real HTTP receivers on loopback: a slow or failing
endpoint holds up only itself, Retry-After is honoured, the circuit breaker opens and recovers, batches
verify with standardwebhooks, and a payment's reversal never arrives before its application."""

import asyncio
import json
import time

import grpc
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb, confirmations_pb2
from confirmations import client
from paymesh.errors import field_violations
from tests.confirmations.support import ATM, ROUTER, Receiver, channel, create_endpoint, eventually, origin, serving

APPLIED, REVERSED = types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REVERSED
OPEN, CLOSED = confirmations_pb2.CIRCUIT_STATE_OPEN, confirmations_pb2.CIRCUIT_STATE_CLOSED


def _allow(*urls: str) -> tuple[str, ...]:
    return tuple(entry for url in urls for entry in origin(url))


async def _endpoints(service) -> dict[str, confirmations_pb2.WebhookEndpoint]:
    listed = await service.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest())
    return {endpoint.endpoint_id: endpoint for endpoint in listed.endpoints}


async def test_a_hung_and_a_failing_endpoint_do_not_hold_up_a_healthy_one(settings):
    """Four POSTs in flight at most (per endpoint now; the old dispatcher's bound for all of them): while
    one endpoint never answers in time and another answers 503, the healthy one gets every confirmation,
    and the hung one has seen no more than its own four by then."""
    healthy, hung, failing = Receiver(), Receiver(delay=3.5), Receiver(always_fail=True)
    async with healthy as good_url, hung as hung_url, failing as bad_url, \
            serving(settings, webhook_concurrency=4, webhook_timeout=3.0,
                    webhook_allowlist=_allow(good_url, hung_url, bad_url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            for n, url in enumerate((hung_url, bad_url, good_url)):
                await create_endpoint(service, url, f"r{n}")
            await client.publish(client.stub(router), [client.confirmation(f"p{i}", types_pb2.CHANNEL_ATM)
                                                       for i in range(40)], per_message=10)

            async def healthy_has_all():
                return len(healthy.accepted) == 40
            await eventually(healthy_has_all)
            hung_seen = sum(hung.attempts.values())
    # (the hung receiver's handlers finish when the test stops it, after the sender gave up)
    assert hung_seen <= 4
    assert sum(failing.attempts.values()) >= 1 and not failing.accepted


async def test_retry_after_is_honoured_and_the_backlog_shows_it(settings):
    """A 429 with Retry-After: 1 holds the endpoint's next attempt for a second (the retry delay alone would
    be 25-50 ms); meanwhile its backlog shows the circuit OPEN until then, with the delivery pending."""
    answered = []

    def answer(headers, body):
        answered.append(headers["webhook-id"])
        return web.Response(status=429, headers={"Retry-After": "1"}) if len(answered) == 1 else None

    receiver = Receiver(answer=answer)
    async with receiver as url, serving(settings, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoint = await create_endpoint(service, url)
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

            async def refused_once():
                return len(receiver.log) == 1
            await eventually(refused_once)
            backlog = (await _endpoints(service))[endpoint.endpoint_id].backlog

            async def delivered():
                return "msg_1" in receiver.accepted
            await eventually(delivered)
            after = (await _endpoints(service))[endpoint.endpoint_id].backlog
    (refused_at, _, status), (retried_at, retried_id, _) = receiver.log
    assert status == 429 and retried_id == "msg_1"
    assert retried_at - refused_at >= 0.95
    assert backlog.circuit_state == OPEN and backlog.pending_count == 1
    assert backlog.retry_time.ToDatetime().timestamp() > time.time() - 2
    assert after.circuit_state == CLOSED and after.pending_count == 0


async def test_the_circuit_opens_after_failures_in_a_row_and_recovers(settings):
    """Five failures in a row open the circuit: nothing reaches the endpoint before the retry time its backlog
    shows; once the receiver answers again, a probe closes it and everything is delivered."""
    receiver = Receiver(always_fail=True)
    async with receiver as url, serving(settings, webhook_base_delay=0.5, webhook_max_delay=1.0,
                                        webhook_max_attempts=20, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoint = await create_endpoint(service, url)
            await client.publish(client.stub(router), [client.confirmation(f"p{i}", types_pb2.CHANNEL_ATM)
                                                       for i in range(10)])

            async def circuit_open():
                backlog = (await _endpoints(service))[endpoint.endpoint_id].backlog
                return backlog.circuit_state == OPEN and backlog
            await eventually(circuit_open)
            backlog = await circuit_open()
            assert backlog
            seen_open_at, attempts_then = time.time(), len(receiver.log)
            retry_at = backlog.retry_time.ToDatetime().timestamp()
            await asyncio.sleep(max(0.0, retry_at - time.time() - 0.05))
            attempts_while_open = len(receiver.log) - attempts_then
            receiver.always_fail = False

            async def all_delivered():
                backlog = (await _endpoints(service))[endpoint.endpoint_id].backlog
                return len(receiver.accepted) == 10 and backlog.pending_count == 0 and backlog
            await eventually(all_delivered)
            recovered = await all_delivered()
    assert retry_at > seen_open_at - 0.05
    assert attempts_while_open == 0
    assert recovered and recovered.circuit_state == CLOSED


async def test_an_endpoint_that_opts_in_gets_signed_batches_that_verify(settings, database_url):
    receiver = Receiver()
    async with receiver as url, serving(settings, database_url, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            with pytest.raises(grpc.aio.AioRpcError) as too_big:
                await create_endpoint(service, url, "r0", max_batch_size=101)
            endpoint = await create_endpoint(service, url, max_batch_size=10)
            listed = (await _endpoints(service))[endpoint.endpoint_id]
            await client.publish(client.stub(router), [client.confirmation(f"p{i}", types_pb2.CHANNEL_ATM)
                                                       for i in range(25)], per_message=25)

            async def all_arrived():
                return sum(len(json.loads(body)["data"]["webhooks"]) for _, body in receiver.accepted.values()) == 25
            await eventually(all_arrived)
    assert too_big.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(too_big.value) == ["max_batch_size"]
    assert listed.max_batch_size == 10
    verifier, items = Webhook(endpoint.signing_secret), []
    for message_id, (headers, body) in receiver.accepted.items():
        payload = verifier.verify(body, headers)
        assert payload["type"] == "payment.batch" and len(payload["data"]["webhooks"]) <= 10
        batch = payload["data"]["webhooks"]
        sequences = [int(item["id"].removeprefix("msg_")) for item in batch]
        assert message_id == f"batch_{sequences[0]}_{sequences[-1]}_{len(batch)}"
        assert sequences == sorted(sequences)
        for item in batch:
            assert item["type"] == "payment.applied" and item["data"]["sequence"] == item["id"].removeprefix("msg_")
        items.extend(batch)
    assert sorted(item["data"]["payment_id"] for item in items) == sorted(f"p{i}" for i in range(25))
    assert len(receiver.accepted) >= 3


async def test_a_payments_reversal_never_arrives_before_its_application(settings, database_url):
    """Each application's first attempt fails, so its retry comes after its reversal was committed: the
    reversal waits for it. Payments without a reversal, delivered in parallel, are not held."""
    first_seen: set[str] = set()

    def answer(headers, body):
        confirmation = json.loads(body)["data"]
        if confirmation["status"] == "PAYMENT_STATUS_APPLIED" and confirmation["payment_id"] not in first_seen:
            first_seen.add(confirmation["payment_id"])
            return web.Response(status=503)
        return None

    receiver = Receiver(answer=answer, delay=0.01)
    async with receiver as url, serving(settings, database_url, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            await create_endpoint(client.stub(atm), url)
            publisher = client.stub(router)
            reversed_ids = [f"r{i}" for i in range(15)]
            await client.publish(publisher, [client.confirmation(p, types_pb2.CHANNEL_ATM)
                                             for p in [*reversed_ids, *(f"q{i}" for i in range(15))]])
            await client.publish(publisher, [client.confirmation(p, types_pb2.CHANNEL_ATM, status=REVERSED)
                                             for p in reversed_ids])

            async def all_arrived():
                return len(receiver.accepted) == 45
            await eventually(all_arrived)
    accepted_order = [json.loads(receiver.accepted[message_id][1])["data"] for _, message_id, status in receiver.log
                      if 200 <= status < 300]
    events = [(item["payment_id"], item["status"]) for item in accepted_order]
    for payment_id in reversed_ids:
        applied, reversal = (payment_id, "PAYMENT_STATUS_APPLIED"), (payment_id, "PAYMENT_STATUS_REVERSED")
        assert events.index(applied) < events.index(reversal)
    # Every attempt of a reversal (not only the accepted one) came after its application was accepted.
    attempts = [json.loads(receiver.accepted[message_id][1])["data"] | {"ok": 200 <= status < 300}
                for _, message_id, status in receiver.log]
    for payment_id in reversed_ids:
        applied_at = next(n for n, a in enumerate(attempts) if (a["payment_id"], a["status"], a["ok"]) == (
            payment_id, "PAYMENT_STATUS_APPLIED", True))
        assert all(n > applied_at for n, a in enumerate(attempts)
                   if (a["payment_id"], a["status"]) == (payment_id, "PAYMENT_STATUS_REVERSED"))
    assert len(attempts) == 75  # 30 applications twice, 15 reversals once


async def test_an_endpoint_gets_its_posts_on_a_few_kept_alive_connections(settings):
    """60 POSTs 20 ms each, four in flight at most: they come on at most four connections, kept alive."""
    receiver = Receiver(delay=0.02)
    async with receiver as url, serving(settings, webhook_concurrency=4, webhook_allowlist=origin(url)) as (address, _):
        async with channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            await create_endpoint(client.stub(atm), url)
            await client.publish(client.stub(router), [client.confirmation(f"p{i}", types_pb2.CHANNEL_ATM)
                                                       for i in range(60)])

            async def all_arrived():
                return len(receiver.accepted) == 60
            await eventually(all_arrived)
    assert 1 <= len(receiver.connections) <= 4
