"""The bridge's lease holder SIGKILLed under load with its standby running, on one PostgreSQL database:
two mainframe-bridge processes (real processes, real mTLS, the default lease: TTL 4 s, renewed every
1 s, polled every 0.25 s) and one mainframe emulator. The standby is NOT_SERVING, refuses calls and
opens no link to the mainframe while the other holds the lease. Postings stream to the active one as
the router sends them; it is killed mid-stream, with postings queued, in flight on the link and
answered but not yet recorded; the client sends every posting again to whichever process is SERVING,
as the router does with what has no final answer. The standby serves within a few seconds
(measured, printed), every posting reaches the mainframe exactly once and in queue order (the
emulator's own book: 0 lost, 0 twice), and the new holder's end-of-day file is accepted by the
mainframe, whose control totals it checks against its own ledger.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/mainframe_bridge/test_bridge_takeover.py
prints `bridge takeover: ...` with the measured times."""

import asyncio
import signal
import time

import grpc
import psycopg
import pytest

from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from paymesh.errors import error_info
from paymesh.topology import OPERATOR
from tests.mainframe_bridge.support import (DATE, emulator_book, health_of, post_all, posting, start_bridge,
                                           start_emulator, stub, until_serving, wait_until_posted)

QUEUED, POSTED = ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED
POSTINGS, PER_MESSAGE, ACKED_BEFORE_KILL = 5000, 50, 1000
# The default lease: a holder's last renewal is at most 1 s old when it dies, so its lease lapses
# 3 to 4 s later; the standby looks every 0.25 s.
TAKEOVER_BOUND_SECONDS = 4.0 + 0.25 + 2.0


def queue_of(url: str) -> list[str]:
    """The posting ids of the bridge's queue, in seq order (the order sent to the mainframe)."""
    with psycopg.connect(url) as connection:
        return [row[0] for row in connection.execute("SELECT posting_id FROM postings ORDER BY seq")]


async def test_the_holder_sigkilled_under_load_the_standby_serves_within_seconds_and_each_posting_posts_once(
        tmp_path, pki_dir, processes, postgres_url):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="SLOW", PAYMESH_EMULATOR_DELAY_MS="20")
    processes.append(emulator)
    env = dict(PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL=postgres_url)
    first = start_bridge(tmp_path / "first", pki_dir, emulator.address, **env)
    processes.append(first)
    second = start_bridge(tmp_path / "second", pki_dir, emulator.address, **env)
    processes.append(second)
    assert (await health_of(first.address, pki_dir), await health_of(second.address, pki_dir)) == (
        "SERVING", "NOT_SERVING"), "the first one started holds the lease; the second is its standby"
    channel, standby = stub(second.address, pki_dir, OPERATOR)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await standby.GetLedgerSummary(bridge_pb2.GetLedgerSummaryRequest(business_date=DATE))
    info = error_info(refused.value)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info is not None and info.metadata["role"] == "standby"

    postings = [posting(n) for n in range(POSTINGS)]
    acked: dict[str, bridge_pb2.PostingAck] = {}
    channel, active = stub(first.address, pki_dir)
    async with channel:
        requests = [bridge_pb2.PostEntriesRequest(postings=postings[i:i + PER_MESSAGE])
                    for i in range(0, POSTINGS, PER_MESSAGE)]
        call = active.PostEntries(iter(requests), timeout=60)
        with pytest.raises(grpc.aio.AioRpcError):
            async for response in call:
                acked.update((ack.posting_id, ack) for ack in response.acks)
                if len(acked) >= ACKED_BEFORE_KILL and first.process.poll() is None:
                    link_before_kill = "mainframe link open" in second.log() or "mainframe unreachable" in second.log()
                    first.process.kill()  # SIGKILL mid-stream, with postings queued and in flight on the link
                    first.process.wait()
                    killed_at = time.monotonic()
    assert first.process.returncode == -9 and ACKED_BEFORE_KILL <= len(acked) < POSTINGS
    assert not link_before_kill, "the standby opened no link to the mainframe while the other held the lease"
    posted_before = len(emulator_book(tmp_path))

    holder, serving_after = await until_serving([first, second], pki_dir, killed_at)
    assert holder is second
    channel, router = stub(second.address, pki_dir)
    async with channel:
        retried = await post_all(router, postings, per_message=PER_MESSAGE)  # everything again: the router's resend
        answered_after = time.monotonic() - killed_at
        assert {ack.status for ack in retried.values()} <= {QUEUED, POSTED}
        assert await wait_until_posted(router, POSTINGS, timeout=60) == {POSTED: POSTINGS}
        posted_after = time.monotonic() - killed_at
    print(f"\nbridge takeover: the standby SERVING {serving_after:.2f} s after the holder's SIGKILL, all "
          f"{POSTINGS} postings answered {answered_after:.2f} s after and posted {posted_after:.2f} s after; "
          f"{len(acked)} acknowledged and {posted_before} at the mainframe before the kill")
    assert serving_after < TAKEOVER_BOUND_SECONDS
    assert "mainframe link open" in second.log()

    book = emulator_book(tmp_path)
    assert [posting_id for posting_id, _ in book] == [p.posting_id for p in postings], "0 lost, 0 twice, in order"
    assert {code for _, code in book} == {0}
    assert queue_of(postgres_url) == [p.posting_id for p in postings], "one row each, in the order sent"

    operator_channel, operator = stub(second.address, pki_dir, OPERATOR)
    async with operator_channel:
        closed = await operator.CloseBusinessDay(bridge_pb2.CloseBusinessDayRequest(business_date=DATE), timeout=60)
        summary = await operator.GetLedgerSummary(bridge_pb2.GetLedgerSummaryRequest(business_date=DATE))
    assert closed.accepted_by_mainframe and closed.record_count == 3 * POSTINGS and closed.file_sequence == 1
    total = sum(p.entries[0].amount.amount_minor for p in postings)
    assert [(m.currency_code, m.amount_minor) for m in closed.debit_totals] == [("PEN", total)]
    assert [(m.currency_code, m.amount_minor) for m in closed.credit_totals] == [("PEN", total)]
    assert summary.day_closed and sum(line.posting_count for line in summary.lines) == POSTINGS
    assert (tmp_path / "second" / "data" / "eod" / closed.file_name).exists(), "written by the new holder"
    with psycopg.connect(postgres_url) as connection:
        lease = connection.execute("SELECT epoch, holder FROM service_lease WHERE name = 'mainframe-bridge'").fetchone()
    assert lease is not None and lease[0] == 2 and lease[1].split(":")[1] == str(second.process.pid)


async def test_a_holder_paused_past_its_lease_is_deposed_and_once_resumed_steps_down_and_posts_nothing_twice(
        tmp_path, pki_dir, processes, postgres_url):
    """SIGSTOP, not SIGKILL: the holder does not know it was replaced. Its standby takes over; resumed
    with messages still in flight and its link still open, the old holder's writes fail the fence, it
    steps down NOT_SERVING and closes its link. What it may still send the mainframe is a posting
    already sent (the mainframe answers it as the first time), so the book is each posting once, in order."""
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="SLOW", PAYMESH_EMULATOR_DELAY_MS="20")
    processes.append(emulator)
    env = dict(PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL=postgres_url, PAYMESH_LEASE_TTL_SECONDS="2",
               PAYMESH_LEASE_RENEW_SECONDS="0.5", PAYMESH_LEASE_POLL_SECONDS="0.1")
    first = start_bridge(tmp_path / "first", pki_dir, emulator.address, **env)
    processes.append(first)
    second = start_bridge(tmp_path / "second", pki_dir, emulator.address, **env)
    processes.append(second)
    postings = [posting(n) for n in range(POSTINGS)]
    acked: dict[str, bridge_pb2.PostingAck] = {}
    resumed_at = 0.0
    channel, active = stub(first.address, pki_dir)
    try:
        async with channel:
            requests = [bridge_pb2.PostEntriesRequest(postings=postings[i:i + PER_MESSAGE])
                        for i in range(0, POSTINGS, PER_MESSAGE)]
            call = active.PostEntries(iter(requests), timeout=60)
            try:
                async for response in call:
                    acked.update((ack.posting_id, ack) for ack in response.acks)
                    if len(acked) >= ACKED_BEFORE_KILL and not resumed_at:
                        first.process.send_signal(signal.SIGSTOP)
                        paused_at = time.monotonic()
                        _, took_over_after = await until_serving([second], pki_dir, paused_at)
                        first.process.send_signal(signal.SIGCONT)
                        resumed_at = time.monotonic()
            except grpc.aio.AioRpcError as refused:  # the rest refused by the fence, to be sent again
                assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused
        assert resumed_at, "the stream ended before the pause"
        while await health_of(first.address, pki_dir) != "NOT_SERVING":
            assert time.monotonic() - resumed_at < 3.0, "the deposed holder did not step down"
            await asyncio.sleep(0.02)
        stepped_down_after = time.monotonic() - resumed_at
        print(f"\npaused bridge: the standby SERVING {took_over_after:.2f} s after the SIGSTOP; the holder, resumed, "
              f"NOT_SERVING {stepped_down_after:.2f} s after; {len(acked)} postings it had acknowledged")
        assert "lease lost" in first.log()

        channel, router = stub(second.address, pki_dir)
        async with channel:
            retried = await post_all(router, postings, per_message=PER_MESSAGE)
            assert {ack.status for ack in retried.values()} <= {QUEUED, POSTED}
            assert await wait_until_posted(router, POSTINGS, timeout=60) == {POSTED: POSTINGS}
        book = emulator_book(tmp_path)
        assert [posting_id for posting_id, _ in book] == [p.posting_id for p in postings], "0 lost, 0 twice, in order"
        assert queue_of(postgres_url) == [p.posting_id for p in postings]
    finally:
        if first.process.poll() is None:
            first.process.send_signal(signal.SIGCONT)
