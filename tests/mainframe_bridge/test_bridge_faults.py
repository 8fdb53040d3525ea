"""The bridge and the emulator as real processes, under the faults the bank expects:
bad movements, a mainframe that answers garbage or half a frame, a link cut
mid-window, a mainframe down for a whole run, the bridge killed mid-run. The link dropped and the
bridge killed run on both of the queue's backends (database_url: SQLite, PostgreSQL)."""

import asyncio
import time

import grpc
import pytest

from bank.common.v1 import errors_pb2
from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from mainframe_bridge.link import set_emulator_mode
from tests.mainframe_bridge.conftest import bridge_env
from tests.mainframe_bridge.support import (
    emulator_book, post_all, posted_count, posting, start_bridge, start_emulator, stub, until_serving,
    wait_until_posted,
)

QUEUED, POSTED, REJECTED = (ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED,
                            ledger_pb2.POSTING_STATUS_REJECTED)


def assert_posted_once_in_order(home, postings):
    book = emulator_book(home)
    assert [posting_id for posting_id, _ in book] == [p.posting_id for p in postings]
    assert {code for _, code in book} == {0}


async def test_unbalanced_movement_and_unknown_account_are_refused_on_the_stream(tmp_path, pki_dir, processes):
    emulator = start_emulator(tmp_path, pki_dir)
    processes.append(emulator)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address)
    processes.append(bridge)
    good = posting(1)
    unbalanced = posting(2)
    unbalanced.entries[1].amount.amount_minor += 1
    unknown = posting(3)
    unknown.entries[2].account = "999999"
    newline = posting(5)
    newline.posting_id += "\n"  # would end a fixed-width record early
    after = posting(4)
    channel, bridge_stub = stub(bridge.address, pki_dir)
    async with channel:
        acks = await post_all(bridge_stub, [good, unbalanced, unknown, newline, after], per_message=2)
        assert acks[good.posting_id].status == QUEUED and acks[after.posting_id].status == QUEUED
        assert acks[unbalanced.posting_id].status == REJECTED
        assert acks[unbalanced.posting_id].rejection.reason == errors_pb2.ERROR_REASON_UNBALANCED_MOVEMENT
        assert "credits exceed debits by 1 PEN" in acks[unbalanced.posting_id].rejection.message
        assert acks[unknown.posting_id].rejection.reason == errors_pb2.ERROR_REASON_UNKNOWN_ACCOUNT
        assert acks[unknown.posting_id].rejection.field_violations[0].field == "entries[2].account"
        assert acks[newline.posting_id].rejection.reason == errors_pb2.ERROR_REASON_INVALID_FIELD
        assert (await wait_until_posted(bridge_stub, 2)) == {POSTED: 2}
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await bridge_stub.GetPostingStatus(bridge_pb2.GetPostingStatusRequest(posting_id=unbalanced.posting_id))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert_posted_once_in_order(tmp_path, [good, after])


@pytest.mark.parametrize("mode", ["GARBAGE", "TRUNCATE"])
async def test_a_garbled_or_truncated_reply_keeps_postings_queued_until_the_mainframe_answers_properly(
        mode, tmp_path, pki_dir, processes):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE=mode)
    processes.append(emulator)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address)
    processes.append(bridge)
    postings = [posting(n) for n in range(300)]
    channel, bridge_stub = stub(bridge.address, pki_dir)
    async with channel:
        acks = await post_all(bridge_stub, postings)
        assert {ack.status for ack in acks.values()} == {QUEUED}
        await asyncio.sleep(1.0)  # several sends, each answered badly
        assert await posted_count(bridge_stub) == {QUEUED: 300}
        assert "mainframe link lost" in bridge.log()
        await set_emulator_mode(emulator.address, pki_dir, "NORMAL")
        assert await wait_until_posted(bridge_stub, 300) == {POSTED: 300}
    assert_posted_once_in_order(tmp_path, postings)


async def test_the_link_dropped_mid_window_loses_nothing_and_posts_nothing_twice(tmp_path, pki_dir, processes,
                                                                                 database_url):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="SLOW", PAYMESH_EMULATOR_DELAY_MS="30")
    processes.append(emulator)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address, **bridge_env(database_url))
    processes.append(bridge)
    postings = [posting(n) for n in range(3000)]
    channel, bridge_stub = stub(bridge.address, pki_dir)
    async with channel:
        await post_all(bridge_stub, postings)
        counts = await wait_until_posted(bridge_stub, 1, timeout=10)
        emulator.process.kill()  # SIGKILL: the link drops with a window of records in flight
        emulator.process.wait()
        assert 0 < counts.get(POSTED, 0) < 3000
        restarted = start_emulator(tmp_path, pki_dir, PAYMESH_MAINFRAME_EMULATOR_PORT=str(emulator.port))
        processes.append(restarted)
        assert await wait_until_posted(bridge_stub, 3000) == {POSTED: 3000}
    assert_posted_once_in_order(tmp_path, postings)


async def test_mainframe_down_for_a_whole_run_then_back_posts_everything_in_order_once(tmp_path, pki_dir, processes):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="DOWN")
    processes.append(emulator)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address)
    processes.append(bridge)
    postings = [posting(n) for n in range(5000)]
    channel, bridge_stub = stub(bridge.address, pki_dir)
    async with channel:
        acks = await post_all(bridge_stub, postings)
        assert len(acks) == 5000 and {ack.status for ack in acks.values()} == {QUEUED}
        assert await posted_count(bridge_stub) == {QUEUED: 5000}
        assert emulator_book(tmp_path) == []
        await set_emulator_mode(emulator.address, pki_dir, "NORMAL")
        assert await wait_until_posted(bridge_stub, 5000) == {POSTED: 5000}
    assert_posted_once_in_order(tmp_path, postings)


async def test_bridge_killed_mid_run_loses_nothing_acknowledged_and_posts_nothing_twice(tmp_path, pki_dir, processes,
                                                                                        database_url):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="SLOW", PAYMESH_EMULATOR_DELAY_MS="20")
    processes.append(emulator)
    # On PostgreSQL the killed process's lease lapses before the restarted one serves: a short one here.
    env = dict(bridge_env(database_url), PAYMESH_LEASE_TTL_SECONDS="1", PAYMESH_LEASE_RENEW_SECONDS="0.25",
               PAYMESH_LEASE_POLL_SECONDS="0.05")
    bridge = start_bridge(tmp_path, pki_dir, emulator.address, **env)
    processes.append(bridge)
    postings = [posting(n) for n in range(5000)]
    acked: dict[str, bridge_pb2.PostingAck] = {}
    channel, bridge_stub = stub(bridge.address, pki_dir)
    async with channel:
        requests = [bridge_pb2.PostEntriesRequest(postings=postings[i:i + 50]) for i in range(0, 5000, 50)]
        call = bridge_stub.PostEntries(iter(requests), timeout=60)
        with pytest.raises(grpc.aio.AioRpcError):
            async for response in call:
                acked.update((ack.posting_id, ack) for ack in response.acks)
                if len(acked) >= 1000:
                    bridge.process.kill()  # SIGKILL mid-stream, with postings queued and in flight
    assert 1000 <= len(acked) < 5000
    restarted = start_bridge(tmp_path, pki_dir, emulator.address, **env)
    processes.append(restarted)
    await until_serving([restarted], pki_dir, time.monotonic())
    channel, bridge_stub = stub(restarted.address, pki_dir)
    async with channel:
        for posting_id in list(acked)[:50]:  # acknowledged before the kill: still there
            status = await bridge_stub.GetPostingStatus(bridge_pb2.GetPostingStatusRequest(posting_id=posting_id))
            assert status.status in (QUEUED, POSTED)
        retried = await post_all(bridge_stub, postings)  # the router resends what it has no final answer for
        assert {ack.status for ack in retried.values()} <= {QUEUED, POSTED}
        assert await wait_until_posted(bridge_stub, 5000) == {POSTED: 5000}
    assert_posted_once_in_order(tmp_path, postings)
