"""The router killed with SIGKILL in the middle of a 5,000-line batch, restarted, and
the batch uploaded again: every line applied once and confirmed once. And stopped with
SIGTERM (a scale-down): it leaves no outbox row behind."""

import asyncio
import sqlite3

import grpc

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
from paymesh import tls
from paymesh.topology import OPERATOR
from tests.harness import start_mesh, stop_mesh
from tests.channel_calls import AS_OF, ENV, open_loans, order, upload

LINES = 5000


async def core_day(services, pki_dir) -> tuple[int, int]:
    async with tls.channel_for(services["core-cash"].address, pki_dir, OPERATOR) as ch:
        day = await core_grpc.LoanCoreServiceStub(ch).ListAppliedPayments(
            core_api.ListAppliedPaymentsRequest(business_date=AS_OF, page_size=1), timeout=10)
    return day.payment_count, sum(m.amount_minor for m in day.payment_totals)


async def confirmed(services, pki_dir) -> tuple[int, int]:
    async with tls.channel_for(services["confirmations"].address, pki_dir, OPERATOR) as ch:
        summary = await conf_grpc.ConfirmationServiceStub(ch).SummarizeConfirmations(
            conf_api.SummarizeConfirmationsRequest(business_date=AS_OF), timeout=10)
    applied = [t for t in summary.totals if t.status == types_pb2.PAYMENT_STATUS_APPLIED]
    return sum(t.count for t in applied), sum(t.amount.amount_minor for t in applied)


async def test_router_killed_mid_batch_then_resumed_applies_every_line_once(tmp_path, pki_dir):
    services = start_mesh(tmp_path, pki_dir, only=("core-cash", "confirmations", "payment-router"), **ENV)
    try:
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        orders = [order("", loans[i % len(loans)], 100 + i % 50) for i in range(LINES)]
        expected_total = sum(o.amount.amount_minor for o in orders)
        first = asyncio.create_task(upload(services, pki_dir, "agent", "agent-crash-day", orders))
        while (await core_day(services, pki_dir))[0] < 300:  # kill it once the core is applying lines
            await asyncio.sleep(0.02)
        services["payment-router"].process.kill()
        try:
            await first
            raise AssertionError("the upload should have been cut by the router's death")
        except grpc.aio.AioRpcError as cut:
            assert cut.code() == grpc.StatusCode.UNAVAILABLE
        applied_before_resume = (await core_day(services, pki_dir))[0]
        assert 300 <= applied_before_resume < LINES

        services["payment-router"] = services["payment-router"].restart()
        resumed = await upload(services, pki_dir, "agent", "agent-crash-day", orders)
        assert resumed.summary.applied_count == LINES
        assert resumed.summary.replayed_count >= applied_before_resume
        assert await core_day(services, pki_dir) == (LINES, expected_total)
        for _ in range(100):  # the outbox drains to confirmations in the background
            if await confirmed(services, pki_dir) == (LINES, expected_total):
                break
            await asyncio.sleep(0.1)
        assert await confirmed(services, pki_dir) == (LINES, expected_total)
    finally:
        stop_mesh(services)


async def test_router_stopped_with_sigterm_delivers_its_outbox_before_it_exits(tmp_path, pki_dir):
    # A replica scaled away may never start again: what it holds for the ledger and the
    # channels must reach the bridge and confirmations before it goes.
    services = start_mesh(tmp_path, pki_dir, only=("mainframe-emulator", "core-cash", "mainframe-bridge",
                                                    "confirmations", "payment-router"), **ENV)
    try:
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        orders = [order("", loans[i % len(loans)], 100 + i % 50) for i in range(2000)]
        reply = await upload(services, pki_dir, "agent", "agent-stop-day", orders)
        assert reply.summary.applied_count == len(orders)
        assert services["payment-router"].terminate() == 0
        journal = sqlite3.connect(tmp_path / "data" / "payment-router.db")
        assert journal.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        journal.close()
        assert await confirmed(services, pki_dir) == (len(orders), sum(o.amount.amount_minor for o in orders))
    finally:
        stop_mesh(services)
