"""The confirmation service's lease holder SIGKILLed under load with its standby running, on one
PostgreSQL database: two confirmations processes (real processes, real mTLS, the default lease: TTL
4 s, renewed every 1 s, polled every 0.25 s). The router's stream publishes through the active one
(many messages in flight) while a durable consumer reads and acknowledges; the holder is killed
mid-stream; the publisher goes to whichever process is SERVING and publishes every message again,
as the router does with what was not answered. The standby serves within a few seconds (measured,
printed); every confirmation is stored exactly once with gapless sequences (0 lost, 0 twice), each
acknowledged one keeps its sequence, and the consumer resuming from its cursor on the new holder
gets everything after it, in order.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/confirmations/test_confirmations_takeover.py
prints `takeover: ...` with the measured times."""

import asyncio
import signal
import time

import grpc
import psycopg

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client
from tests.confirmations.support import ATM, ROUTER, channel, health_of, until_serving
from tests.harness import start_service

COUNT, PER_MESSAGE = 8000, 40
# The kill comes once the publisher has this many acks and the consumer has acknowledged this far.
ACKS_BEFORE_KILL, CONSUMED_BEFORE_KILL = 2000, 1000
# The default lease: a holder's last renewal is at most 1 s old when it dies, so its lease lapses
# 3 to 4 s later; the standby looks every 0.25 s.
TAKEOVER_BOUND_SECONDS = 4.0 + 0.25 + 2.0
# How a stream broken by its process's SIGKILL ends, as the client sees it.
BROKEN_BY_A_KILL = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)
ENV = {"PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS": "0.2"}


def the_confirmations() -> list:
    return [client.confirmation(f"p{n:05}", types_pb2.CHANNEL_ATM, 100 + n, business_date="2026-11-27")
            for n in range(COUNT)]


async def _messages(items: list):
    for start in range(0, len(items), PER_MESSAGE):
        yield pb.PublishConfirmationsRequest(confirmations=items[start:start + PER_MESSAGE])
        await asyncio.sleep(0.004)  # about 10,000 a second offered, many messages in flight


async def publish_until_killed(address: str, settings, items: list, acknowledged: dict[str, int], progressed,
                               ends_as: tuple[grpc.StatusCode, ...] = BROKEN_BY_A_KILL) -> None:
    """Every message on one stream, each (payment id: sequence) acknowledged kept in acknowledged and
    progressed() after each answer, until the stream breaks (or all are answered). A stream the fault
    ends must end with one of ends_as."""
    async with channel(address, settings, ROUTER) as ch:
        try:
            async for response in client.stub(ch).PublishConfirmations(_messages(items)):
                acknowledged.update((ack.payment_id, ack.sequence) for ack in response.acks)
                progressed()
        except grpc.aio.AioRpcError as broken:
            assert broken.code() in ends_as, broken


async def consume(address: str, settings, start, received: list, until_sequence: int | None = None,
                  subscribed: asyncio.Event | None = None, progressed=lambda acked: None) -> int:
    """Reads as the durable consumer "reconciler", acknowledging each batch once kept, until the stream
    breaks or until_sequence is received; the last position acknowledged (also told to progressed).
    subscribed is set at the stream's first answer (a heartbeat on an empty log)."""
    acked = 0
    async with channel(address, settings, ATM) as ch:
        stub = client.stub(ch)
        try:
            async for response in stub.Subscribe(pb.SubscribeRequest(consumer_name="reconciler",
                                                                      start_position=start)):
                if subscribed is not None:
                    subscribed.set()
                batch = response.batch.confirmations
                if not batch:
                    continue
                received.extend(batch)
                acked = (await stub.AcknowledgeConfirmations(pb.AcknowledgeConfirmationsRequest(
                    consumer_name="reconciler", sequence=batch[-1].sequence))).acknowledged_sequence
                progressed(acked)
                if until_sequence is not None and batch[-1].sequence >= until_sequence:
                    return acked
        except grpc.aio.AioRpcError as broken:
            assert broken.code() in BROKEN_BY_A_KILL, broken
    return acked


def the_log(url: str) -> tuple[tuple, list[str], int]:
    """((rows, distinct payment ids, first and last sequence), the payment ids in sequence order, the
    consumer's stored position)."""
    with psycopg.connect(url) as connection:
        counted = connection.execute(
            "SELECT count(*), count(DISTINCT payment_id), min(sequence), max(sequence) FROM confirmation").fetchone()
        ids = [row[0] for row in connection.execute("SELECT payment_id FROM confirmation ORDER BY sequence")]
        position = connection.execute("SELECT acked_sequence FROM consumer WHERE name = 'reconciler'").fetchone()
    assert counted is not None and position is not None
    return tuple(counted), ids, position[0]


async def test_the_holder_sigkilled_under_load_the_standby_serves_within_seconds_and_nothing_is_lost_or_twice(
        tmp_path, settings, postgres_url):
    items = the_confirmations()
    env = dict(ENV, PAYMESH_CONFIRMATIONS_DATABASE_URL=postgres_url)
    first = start_service("confirmations", tmp_path / "first", settings.pki_dir, **env)
    second = start_service("confirmations", tmp_path / "second", settings.pki_dir, **env)
    try:
        pki = settings.pki_dir
        assert (await health_of(first.address, pki), await health_of(second.address, pki)) == (
            "SERVING", "NOT_SERVING"), "the first one started holds the lease; the second is its standby"
        killed_at, consumed = 0.0, 0
        acknowledged: dict[str, int] = {}

        def kill_when_due(acked: int | None = None) -> None:
            nonlocal killed_at, consumed
            consumed = acked if acked is not None else consumed
            if not killed_at and len(acknowledged) >= ACKS_BEFORE_KILL and consumed >= CONSUMED_BEFORE_KILL:
                first.process.kill()
                first.process.wait()
                killed_at = time.monotonic()

        before: list = []
        subscribed = asyncio.Event()
        consuming = asyncio.ensure_future(consume(first.address, settings, pb.START_POSITION_BEGINNING, before,
                                                  subscribed=subscribed, progressed=kill_when_due))
        await asyncio.wait_for(subscribed.wait(), 10)
        await publish_until_killed(first.address, settings, items, acknowledged, kill_when_due)
        acked_before = await asyncio.wait_for(consuming, 10)
        assert killed_at, "the holder was killed mid-run"
        assert first.process.returncode == -9 and ACKS_BEFORE_KILL <= len(acknowledged) < COUNT

        serving_after = await until_serving(second.address, settings, killed_at, within=30)
        async with channel(second.address, settings, ROUTER) as ch:
            acks = await client.publish(client.stub(ch), items, per_message=PER_MESSAGE)  # all again
        answered_after = time.monotonic() - killed_at
        (rows, distinct, lowest, highest), ids, position = the_log(postgres_url)
        after: list = []
        await asyncio.wait_for(consume(second.address, settings, pb.START_POSITION_CONSUMER, after, COUNT), 30)
        print(f"\ntakeover: the standby SERVING {serving_after:.2f} s after the holder's SIGKILL, every confirmation"
              f" answered {answered_after:.2f} s after; {len(acknowledged)} acknowledged before the kill, the"
              f" consumer at {acked_before} then, resuming after {position} on the new holder")
        assert serving_after < TAKEOVER_BOUND_SECONDS

        assert (rows, distinct, lowest, highest) == (COUNT, COUNT, 1, COUNT), "0 lost, 0 twice, no gap"
        assert sorted(ids) == [item.payment_id for item in items]
        assert {a.payment_id: a.sequence for a in acks} == {payment_id: n for n, payment_id in enumerate(ids, 1)}
        assert all(a.sequence == acknowledged[a.payment_id] and a.duplicate for a in acks
                   if a.payment_id in acknowledged), "an acknowledged confirmation kept its sequence"
        assert position >= acked_before, "an acknowledged position is durable"
        assert [c.sequence for c in after] == list(range(position + 1, COUNT + 1)), "everything after the cursor"
        assert [c.payment_id for c in after] == ids[position:]
        assert [c.payment_id for c in before[:position]] == ids[:position]
        with psycopg.connect(postgres_url) as connection:
            lease = connection.execute("SELECT epoch, holder FROM service_lease WHERE name = 'confirmations'"
                                       ).fetchone()
        assert lease is not None and lease[0] == 2 and lease[1].split(":")[1] == str(second.process.pid)
    finally:
        first.kill()
        second.kill()


async def test_a_holder_paused_past_its_lease_is_deposed_and_once_resumed_writes_nothing_and_steps_down(
        tmp_path, settings, postgres_url):
    """SIGSTOP, not SIGKILL: the holder does not know it was replaced. Its standby takes over (a
    transaction the paused holder left open is ended by the server after a TTL); resumed with
    messages still in flight, every write it tries fails the fence, and it steps down NOT_SERVING.
    Published again on the new holder, the log is every confirmation once, without a gap."""
    items = the_confirmations()[:4000]
    env = dict(ENV, PAYMESH_CONFIRMATIONS_DATABASE_URL=postgres_url)
    first = start_service("confirmations", tmp_path / "first", settings.pki_dir, **env)
    second = start_service("confirmations", tmp_path / "second", settings.pki_dir, **env)
    try:
        paused_at = 0.0
        acknowledged: dict[str, int] = {}

        def pause_when_due() -> None:
            nonlocal paused_at
            if not paused_at and len(acknowledged) >= 1000:
                first.process.send_signal(signal.SIGSTOP)
                paused_at = time.monotonic()

        # The holder keeps answering until the fence stops it, so only a refusal may end the stream.
        publishing = asyncio.ensure_future(publish_until_killed(first.address, settings, items, acknowledged,
                                                                pause_when_due, ends_as=(grpc.StatusCode.UNAVAILABLE,)))
        while not paused_at:
            assert not publishing.done(), "the stream ended before the pause"
            await asyncio.sleep(0.01)
        took_over_after = await until_serving(second.address, settings, paused_at, within=30)
        first.process.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        while await health_of(first.address, settings.pki_dir) != "NOT_SERVING":
            assert time.monotonic() - resumed_at < 3.0, "the deposed holder did not step down"
            await asyncio.sleep(0.02)
        stepped_down_after = time.monotonic() - resumed_at
        await asyncio.wait_for(publishing, 15)
        print(f"\npaused holder: the standby SERVING {took_over_after:.2f} s after the SIGSTOP; the holder, resumed,"
              f" NOT_SERVING {stepped_down_after:.2f} s after; {len(acknowledged)} confirmations it had acknowledged")
        assert "lease lost" in first.log()

        async with channel(second.address, settings, ROUTER) as ch:
            acks = await client.publish(client.stub(ch), items, per_message=PER_MESSAGE)
        with psycopg.connect(postgres_url) as connection:
            counted = connection.execute("SELECT count(*), count(DISTINCT payment_id), min(sequence), max(sequence)"
                                         " FROM confirmation").fetchone()
        assert counted == (len(items), len(items), 1, len(items)), "0 lost, 0 twice, no gap"
        assert all(a.sequence == acknowledged[a.payment_id] for a in acks if a.payment_id in acknowledged)
    finally:
        if first.process.poll() is None:
            first.process.send_signal(signal.SIGCONT)
        first.kill()
        second.kill()
