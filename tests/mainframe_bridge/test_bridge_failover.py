"""The bridge's PostgreSQL server lost under load, its streaming standby promoted: a bridge process on a
primary with a synchronous standby on loopback (the fixture of tests/loan_core/test_core_failover.py),
its URL naming both hosts (`target_session_attrs=read-write`). Postings stream to the bridge while it
forwards them to the mainframe emulator; the primary gets SIGKILL mid-stream; the standby is promoted.
The bridge's store, its forwarder and its lease go on on the new primary without a restart, and the
postings sent again all reach the mainframe once, in queue order.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/mainframe_bridge/test_bridge_failover.py
prints `bridge failover: ...` with the measured times."""

import asyncio
import time

import grpc
import psycopg

from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from paymesh_tools.local_postgres import SUPERUSER
from tests.harness import write_met_ended_call
from tests.mainframe_bridge.support import (emulator_book, health_of, post_all, posting, start_bridge,
                                           start_emulator, stub, wait_until_posted)

QUEUED, POSTED = ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED
POSTINGS, PER_MESSAGE, ACKED_BEFORE_FAILURE = 3000, 50, 600


async def test_the_primary_lost_under_load_the_standby_promoted_and_every_posting_posts_once(
        tmp_path, pki_dir, processes, primary_and_standby):
    primary, standby = primary_and_standby
    primary.create_database("mainframe_bridge")
    both = (f"postgresql://{SUPERUSER}:{primary.password}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
            f"/mainframe_bridge?target_session_attrs=read-write")
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="SLOW", PAYMESH_EMULATOR_DELAY_MS="20")
    processes.append(emulator)
    bridge = start_bridge(tmp_path / "bridge", pki_dir, emulator.address, PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL=both)
    processes.append(bridge)
    postings = [posting(n) for n in range(POSTINGS)]
    acked: dict[str, bridge_pb2.PostingAck] = {}
    promoted_after = failed_at = 0.0
    channel, router = stub(bridge.address, pki_dir)
    async with channel:
        requests = [bridge_pb2.PostEntriesRequest(postings=postings[i:i + PER_MESSAGE])
                    for i in range(0, POSTINGS, PER_MESSAGE)]
        call = router.PostEntries(iter(requests), timeout=60)
        try:
            async for response in call:
                acked.update((ack.posting_id, ack) for ack in response.acks)
                if len(acked) >= ACKED_BEFORE_FAILURE and not failed_at:
                    assert primary.process is not None
                    primary.process.kill()  # the primary's machine lost: SIGKILL, commits in flight
                    failed_at = time.monotonic()
                    await asyncio.to_thread(standby.promote)
                    promoted_after = time.monotonic() - failed_at
        except grpc.aio.AioRpcError as refused:  # the store lost mid-stream: the rest to be sent again
            assert refused.code() == grpc.StatusCode.UNAVAILABLE or write_met_ended_call(refused), refused
        assert failed_at, "the stream ended before the failure"

        retried: dict[str, bridge_pb2.PostingAck] = {}
        while not retried:  # sent again, as the router does, until the bridge takes them
            try:
                retried = await post_all(router, postings, per_message=PER_MESSAGE)
            except grpc.aio.AioRpcError as refused:
                assert refused.code() == grpc.StatusCode.UNAVAILABLE or write_met_ended_call(refused), refused
                assert time.monotonic() - failed_at < 30, "the bridge did not come back on the new primary"
                await asyncio.sleep(0.2)
        answered_after = time.monotonic() - failed_at
        assert {ack.status for ack in retried.values()} <= {QUEUED, POSTED}
        assert await wait_until_posted(router, POSTINGS, timeout=60) == {POSTED: POSTINGS}
        posted_after = time.monotonic() - failed_at
    print(f"\nbridge failover: the standby promoted {promoted_after:.2f} s after the primary's SIGKILL; the bridge "
          f"took every posting again {answered_after:.2f} s after, all POSTED {posted_after:.2f} s after; "
          f"{len(acked)} acknowledged before")
    assert await health_of(bridge.address, pki_dir) == "SERVING"
    assert bridge.process.poll() is None, "the bridge process went on throughout"
    book = emulator_book(tmp_path)
    assert [posting_id for posting_id, _ in book] == [p.posting_id for p in postings], "0 lost, 0 twice, in order"
    with psycopg.connect(standby.url("mainframe_bridge")) as connection:
        queue = [row[0] for row in connection.execute("SELECT posting_id FROM postings ORDER BY seq")]
    assert queue == [p.posting_id for p in postings], "nothing acknowledged lost with the primary"
