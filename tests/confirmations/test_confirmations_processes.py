"""The confirmation service as a real process: 10,000 confirmations to a consumer that
disconnects twice, a SIGKILL mid-run that loses nothing acknowledged, and a SIGKILL mid webhook
burst after which every delivery still arrives."""

import asyncio
import json

import grpc
from standardwebhooks import Webhook

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client
from tests.confirmations.support import ATM, ROUTER, Receiver, create_endpoint, eventually, origin
from tests.harness import channel, start_service

Start = pb.StartPosition
ENV = {"PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS": "0.2"}


async def _requests(items, per_message: int, pause: float):
    for i in range(0, len(items), per_message):
        yield pb.PublishConfirmationsRequest(confirmations=items[i:i + per_message])
        await asyncio.sleep(pause)


async def _publish_slowly(service, items, acked: list, per_message=50, pause=0.002) -> None:
    """Publishes on one stream, recording each (payment_id, sequence) as it is acknowledged."""
    async for response in service.PublishConfirmations(_requests(items, per_message, pause)):
        acked.extend((a.payment_id, a.sequence) for a in response.acks)


async def _consume(service, name: str, start, until: int, received: list) -> int:
    """Reads as consumer `name`, acknowledging each batch once processed, until `until` are received
    in all; returns the last acknowledged sequence."""
    call = service.Subscribe(pb.SubscribeRequest(consumer_name=name, start_position=start))
    last = 0
    try:
        async for response in call:
            batch = response.batch.confirmations
            if not batch:
                continue
            received.extend(batch)
            ack = await service.AcknowledgeConfirmations(
                pb.AcknowledgeConfirmationsRequest(consumer_name=name, sequence=batch[-1].sequence))
            last = ack.acknowledged_sequence
            if len(received) >= until:
                return last
    finally:
        call.cancel()
    return last


async def test_ten_thousand_to_a_consumer_that_reconnects_twice_every_one_in_order_none_twice(tmp_path, pki_dir):
    count = 10_000
    items = [client.confirmation(f"p{i:05}", types_pb2.CHANNEL_ATM, 100 + i) for i in range(count)]
    process = start_service("confirmations", tmp_path, pki_dir, **ENV)
    try:
        async with channel(process.address, pki_dir, ROUTER) as router, \
                channel(process.address, pki_dir, ATM) as atm:
            acked: list = []
            publishing = asyncio.ensure_future(_publish_slowly(client.stub(router), items, acked))
            service, received = client.stub(atm), []
            await asyncio.wait_for(_consume(service, "reconciler", Start.START_POSITION_BEGINNING, 2500, received), 60)
            await asyncio.wait_for(_consume(service, "reconciler", Start.START_POSITION_CONSUMER, 6000, received), 60)
            await asyncio.wait_for(_consume(service, "reconciler", Start.START_POSITION_CONSUMER, count, received), 60)
            await asyncio.wait_for(publishing, 60)
        assert len(acked) == count
    finally:
        process.kill()
    sequences = [c.sequence for c in received]
    assert [c.payment_id for c in received] == [f"p{i:05}" for i in range(count)]
    assert sequences == sorted(set(sequences))
    assert not publishing.exception()


async def test_sigkill_mid_run_loses_nothing_acknowledged_and_consumers_resume(tmp_path, pki_dir):
    count = 6000
    items = [client.confirmation(f"p{i:05}", types_pb2.CHANNEL_ATM, 100 + i) for i in range(count)]
    process = start_service("confirmations", tmp_path, pki_dir, **ENV)
    acked: list = []
    received: list = []
    try:
        async with channel(process.address, pki_dir, ROUTER) as router, \
                channel(process.address, pki_dir, ATM) as atm:
            publishing = asyncio.ensure_future(_publish_slowly(client.stub(router), items, acked, pause=0.005))
            consumed = await asyncio.wait_for(
                _consume(client.stub(atm), "books", Start.START_POSITION_BEGINNING, 1500, received), 60)
            while len(acked) < 2500:
                await asyncio.sleep(0.01)
            process.kill()  # SIGKILL, mid-stream
            try:
                await asyncio.wait_for(publishing, 10)
            except grpc.aio.AioRpcError as broken:
                # A write racing the dead transport fails in grpc's core as INTERNAL
                # ("Failed execute_batch: SendMessageOperation"); a read sees UNAVAILABLE.
                assert broken.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                         grpc.StatusCode.INTERNAL)
        assert 2500 <= len(acked) < count  # the kill did land mid-run

        process = start_service("confirmations", tmp_path, pki_dir, **ENV)
        async with channel(process.address, pki_dir, ROUTER) as router, \
                channel(process.address, pki_dir, ATM) as atm:
            service = client.stub(atm)
            everything = await client.collect(
                service.Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_BEGINNING)), len(acked))
            logged = {c.payment_id: c.sequence for c in everything}
            assert all(logged.get(payment_id) == sequence for payment_id, sequence in acked)
            # The router publishes again what it had no ack for (and, retrying, some it had): no duplicates.
            again = await client.publish(client.stub(router), items)
            assert all(a.duplicate for a in again[:len(acked)])
            assert [a.sequence for a in again[:len(acked)]] == [s for _, s in acked]
            resumed: list = []
            await asyncio.wait_for(_consume(service, "books", Start.START_POSITION_CONSUMER, 1, resumed), 30)
    finally:
        process.kill()
    assert resumed[0].sequence == consumed + 1
    assert [c.payment_id for c in received] == [f"p{i:05}" for i in range(len(received))]


async def test_sigkill_mid_webhook_burst_loses_no_delivery(tmp_path, pki_dir):
    """A burst of 3,000 confirmations to a webhook 20 ms away, batches of up to 20; the service is killed
    (SIGKILL) while delivering: after the restart every confirmation reaches the receiver, each signed,
    repeats (sent before the kill, recorded after it) only under a webhook-id already seen."""
    count = 3000
    receiver = Receiver(delay=0.02)
    async with receiver as url:
        env = {**ENV, "PAYMESH_WEBHOOK_ALLOWED_HOSTS": origin(url)[0], "PAYMESH_WEBHOOK_BASE_DELAY_SECONDS": "0.05"}
        process = start_service("confirmations", tmp_path, pki_dir, **env)
        try:
            async with channel(process.address, pki_dir, ATM) as atm, \
                    channel(process.address, pki_dir, ROUTER) as router:
                endpoint = await create_endpoint(client.stub(atm), url, max_batch_size=20)
                await client.publish(client.stub(router), [
                    client.confirmation(f"p{i:05}", types_pb2.CHANNEL_ATM, 100 + i) for i in range(count)])

            def received() -> dict[str, str]:
                """Each payment's webhook-id (msg_<sequence>), by payment id, from every POST accepted."""
                items = {}
                for _, body in receiver.accepted.values():
                    event = json.loads(body)
                    for item in (event["data"]["webhooks"] if event["type"] == "payment.batch" else [event]):
                        items[item["data"]["payment_id"]] = item.get("id") or f"msg_{item['data']['sequence']}"
                return items

            async def some_delivered():
                return len(received()) >= 300
            await eventually(some_delivered)
            process.kill()
            before_kill = len(received())
            assert before_kill < count  # the kill did land mid-burst
            process = process.restart()

            async def all_delivered():
                return len(received()) == count
            await eventually(all_delivered, timeout=60)
        finally:
            process.kill()
    verifier = Webhook(endpoint.signing_secret)
    for headers, body in receiver.accepted.values():
        verifier.verify(body, headers)
    assert sorted(received()) == [f"p{i:05}" for i in range(count)]
    assert len(set(received().values())) == count
