"""The bridge's RPCs as the router and the operator use them: status lookups, who may
call what, replays, and closing the business day with the file the mainframe checks."""

import grpc
import pytest

from bank.common.v1 import errors_pb2
from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from mainframe_bridge import eod_file, records
from paymesh.errors import error_info
from paymesh.topology import OPERATOR, Identity
from tests.mainframe_bridge.conftest import bridge_env
from tests.mainframe_bridge.support import (DATE, post_all, posting, start_bridge, start_emulator, stub,
                                           wait_until_posted)

POSTED, REJECTED = ledger_pb2.POSTING_STATUS_POSTED, ledger_pb2.POSTING_STATUS_REJECTED


async def test_status_replay_and_caller_policy(pair, pki_dir):
    _, bridge = pair
    first = posting(1)
    channel, router = stub(bridge.address, pki_dir)
    async with channel:
        await post_all(router, [first])
        await wait_until_posted(router, 1)
        status = await router.GetPostingStatus(bridge_pb2.GetPostingStatusRequest(posting_id=first.posting_id))
        assert status.status == POSTED and status.mainframe_reference.startswith("GL")
        assert status.posted_time.ToNanoseconds() >= status.queued_time.ToNanoseconds() > 0
        # The same posting again: acknowledged where it stands. The same id with other content: refused.
        changed = posting(1, amount=20_000)
        acks = await post_all(router, [first])
        assert acks[first.posting_id].status == POSTED
        reused = (await post_all(router, [changed]))[first.posting_id]
        assert reused.rejection.reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    operator_channel, operator = stub(bridge.address, pki_dir, OPERATOR)
    async with operator_channel:
        assert (await operator.GetPostingStatus(
            bridge_pb2.GetPostingStatusRequest(posting_id=first.posting_id))).status == POSTED
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await post_all(operator, [posting(2)])
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    atm_channel, atm = stub(bridge.address, pki_dir, Identity("channel", "atm"))
    async with atm_channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await atm.GetLedgerSummary(bridge_pb2.GetLedgerSummaryRequest(business_date=DATE))
        assert error_info(denied.value).reason == "CALLER_NOT_ALLOWED"


async def test_closing_the_day_delivers_a_file_the_mainframe_accepts_and_closes_the_day(pair, tmp_path, pki_dir):
    _, bridge = pair
    postings = [posting(n, amount=1_000 + n) for n in range(40)] + [posting(99, currency="USD")]
    channel, router = stub(bridge.address, pki_dir)
    async with channel:
        await post_all(router, postings)
        await wait_until_posted(router, len(postings))
    operator_channel, operator = stub(bridge.address, pki_dir, OPERATOR)
    async with operator_channel:
        with pytest.raises(grpc.aio.AioRpcError) as bad_date:
            await operator.CloseBusinessDay(bridge_pb2.CloseBusinessDayRequest(business_date="31/03/2025"))
        assert bad_date.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request = bridge_pb2.CloseBusinessDayRequest(request_id="close-1", business_date=DATE)
        closed = await operator.CloseBusinessDay(request)
        assert closed.accepted_by_mainframe and closed.record_count == 41 * 3
        pen = sum(1_000 + n for n in range(40))
        assert {(m.currency_code, m.amount_minor) for m in closed.debit_totals} == {("PEN", pen), ("USD", 10_000)}
        assert list(closed.debit_totals) == list(closed.credit_totals)
        assert await operator.CloseBusinessDay(request) == closed  # closing again answers the first result
        summary = await operator.GetLedgerSummary(bridge_pb2.GetLedgerSummaryRequest(business_date=DATE))
        assert summary.day_closed
    data = (tmp_path / "data" / "eod" / closed.file_name).read_bytes()
    parsed = eod_file.read(data)
    assert parsed.detail_count == 123 and eod_file.check_totals(parsed) == (records.RC_OK, "control totals agree")
    # A posting of the closed day that still comes (a router that was down) is never refused:
    # it is booked in the next business day, its own date kept, a late item of the closed day.
    channel, router = stub(bridge.address, pki_dir)
    async with channel:
        late = (await post_all(router, [posting(500)]))["pst-0000500"]
        assert late.status == ledger_pb2.POSTING_STATUS_QUEUED
        listed = [p async for r in router.ListPostings(bridge_pb2.ListPostingsRequest(business_date=DATE))
                  for p in r.postings if p.posting.posting_id == "pst-0000500"]
    assert [(p.posting.business_date, p.original_business_date) for p in listed] == [("2025-04-01", DATE)]


async def test_a_day_with_postings_still_queued_cannot_close_yet(tmp_path, pki_dir, database_url):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="DOWN")
    bridge = start_bridge(tmp_path, pki_dir, emulator.address, **bridge_env(database_url))
    try:
        channel, router = stub(bridge.address, pki_dir)
        async with channel:
            await post_all(router, [posting(1), posting(2)])
            with pytest.raises(grpc.aio.AioRpcError) as waiting:
                await router.CloseBusinessDay(bridge_pb2.CloseBusinessDayRequest(business_date=DATE), timeout=3)
        assert waiting.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "2 postings of 2025-03-31 still wait" in waiting.value.details()
    finally:
        bridge.kill()
        emulator.kill()
