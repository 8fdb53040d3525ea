"""The business day through real processes: a close while payments keep coming, a router
that missed the close, the calendar's dates, reversals on a later day, and bad dates."""

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import time

import grpc
import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_api, mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.payments.v1 import payment_operations_service_pb2 as ops_api
from bank.payments.v1 import payment_operations_service_pb2_grpc as ops_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc
from paymesh_tools.simulate_day import batch_requests
from paymesh import tls
from paymesh_tools import reconcile
from paymesh.errors import field_violations
from paymesh.topology import OPERATOR, Identity
from tests.harness import start_mesh, stop_mesh, sample_value, scrape
from tests.resilience.support import (
    Orders, Tally, online_channel, point_reconciliation_at, reconciled, stream_channel,
)
from tests.channel_calls import ENV, open_loans, order, submit

FRIDAY, MONDAY = "2026-11-27", "2026-11-30"


def clock(instant: str) -> dict[str, str]:
    return {**ENV, "PAYMESH_CLOCK_START": instant, "PAYMESH_CLOCK_STARTED_AT": str(time.time())}


async def close(mesh, pki_dir, day: str, timeout: float = 60) -> bridge_api.CloseBusinessDayResponse:
    async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir, OPERATOR) as ch:
        return await bridge_grpc.MainframeBridgeServiceStub(ch).CloseBusinessDay(
            bridge_api.CloseBusinessDayRequest(request_id=f"close-{day}", business_date=day), timeout=timeout)


async def close_refused(mesh, pki_dir, day: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await close(mesh, pki_dir, day, timeout=10)
    return refused.value


async def postings(mesh, pki_dir, day: str) -> list:
    async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir, OPERATOR) as ch:
        call = bridge_grpc.MainframeBridgeServiceStub(ch).ListPostings(
            bridge_api.ListPostingsRequest(business_date=day))
        return [p async for response in call for p in response.postings]


async def upload(mesh, pki_dir, batch_id: str, day: str, lines, collection_date: str = ""):
    requests = batch_requests(batch_id, day, lines)
    for request in requests:
        for line in request.lines.lines:
            line.collection_date = collection_date
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "agent")) as ch:
        return await api_grpc.PaymentServiceStub(ch).UploadBatch(iter(requests), timeout=30)


async def agent_files(router_address: str, pki_dir, orders: Orders, stop: asyncio.Event, sent: list) -> None:
    """A small agent day file every 0.3 s until stop: batch traffic beside the online and stream."""
    async with tls.channel_for(router_address, pki_dir, Identity("channel", "agent")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        number = 0
        while not stop.is_set():
            lines = [orders.next("agent") for _ in range(20)]
            reply = await stub.UploadBatch(iter(batch_requests(f"close-file-{number}", FRIDAY, lines)), timeout=30)
            sent.extend(r.payment for r in reply.results)
            number += 1
            await asyncio.sleep(0.3)


async def test_a_close_while_online_stream_and_batch_keep_coming(tmp_path, pki_dir, settings, monkeypatch):
    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{FRIDAY}T18:00:00-05:00"))
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        router = mesh["payment-router"].address
        tally, orders, stop, batch_lines = Tally(), Orders("close"), asyncio.Event(), []
        traffic = asyncio.gather(
            online_channel(router, pki_dir, "atm", 40, orders, tally, stop),
            stream_channel(router, pki_dir, "store", 60, orders, tally, stop),
            agent_files(router, pki_dir, orders, stop, batch_lines),
        )
        await asyncio.sleep(1.5)
        closed = await close(mesh, pki_dir, FRIDAY)  # the traffic goes on through the close
        await asyncio.sleep(1.5)
        stop.set()
        await traffic

        assert closed.accepted_by_mainframe and closed.file_name == "GLPOST.D261127"
        assert not tally.unexpected and not tally.unresolved, (tally.unexpected, tally.unresolved)
        refused_by_close = [p for p in batch_lines if p.rejection.reason in (
            errors_pb2.ERROR_REASON_BUSINESS_DAY_CLOSED, errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE)]
        assert not refused_by_close
        answered = list(tally.applied.values()) + [p for p in batch_lines
                                                   if p.status == types_pb2.PAYMENT_STATUS_APPLIED]
        booked = {day: sum(p.business_date == day for p in answered) for day in (FRIDAY, MONDAY)}
        assert booked[FRIDAY] > 20 and booked[MONDAY] > 20, booked
        assert {p.value_date for p in answered} == {FRIDAY}  # the customers paid on Friday, whatever the booking

        for day in (FRIDAY, MONDAY):
            outcome = await reconciled(settings, day)
            assert outcome.exit_code == 0, reconcile.report(outcome, day, show_all=False)
        # Every applied payment is posted exactly once, in one day or the other.
        posted = [p.posting.payment_id for day in (FRIDAY, MONDAY) for p in await postings(mesh, pki_dir, day)
                  if p.posting.business_date == day]
        assert sorted(posted) == sorted(p.payment_id for p in answered)
        # The day closed stays closed: closing it again is the same answer.
        assert await close(mesh, pki_dir, FRIDAY) == closed
    finally:
        stop_mesh(mesh)


async def test_a_router_down_through_the_close_books_its_postings_late(tmp_path, pki_dir, settings, monkeypatch):
    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{FRIDAY}T11:00:00-05:00"))
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        # The bridge is away: the router's postings of Friday wait in its outbox.
        mesh["mainframe-bridge"].terminate()
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)[:3]
        paid = [await submit(mesh, pki_dir, "atm", order(f"late-{n}", loan_id, 2_000))
                for n, loan_id in enumerate(loans)]
        assert {p.status for p in paid} == {types_pb2.PAYMENT_STATUS_APPLIED}
        assert {p.business_date for p in paid} == {FRIDAY}
        mesh["payment-router"].kill()  # SIGKILL, its outbox still full

        mesh["mainframe-bridge"] = mesh["mainframe-bridge"].restart()
        closed = await close(mesh, pki_dir, FRIDAY)
        assert closed.accepted_by_mainframe and closed.record_count == 0  # nothing of Friday reached it

        mesh["payment-router"] = mesh["payment-router"].restart()
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        late = {p.payment_id for p in paid}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            booked = {p.posting.payment_id: p for p in await postings(mesh, pki_dir, FRIDAY)}
            if late <= set(booked):
                break
            await asyncio.sleep(0.2)
        assert {booked[i].posting.business_date for i in late} == {MONDAY}
        assert {booked[i].original_business_date for i in late} == {FRIDAY}
        # New payments go to Monday at once: the router learned of the close from the bridge.
        after = await submit(mesh, pki_dir, "atm", order("after-close", open_loans(types_pb2.LOAN_TYPE_CASH)[5], 2_000))
        assert (after.business_date, after.value_date) == (MONDAY, FRIDAY)

        friday = await reconciled(settings, FRIDAY)
        report = reconcile.report(friday, FRIDAY, show_all=False)
        assert friday.exit_code == 0, report
        assert all(payment_id in report for payment_id in late) and "late" in report
        monday = await reconciled(settings, MONDAY)
        assert monday.exit_code == 0, reconcile.report(monday, MONDAY, show_all=False)
    finally:
        stop_mesh(mesh)


async def test_the_cut_off_and_bad_dates(tmp_path, pki_dir):
    # The mesh's clock starts at 19:59:45 on Friday: a payment now is Friday's, one after 20:00 is Monday's.
    started_at = time.time()
    mesh = start_mesh(tmp_path, pki_dir, **{**clock(f"{FRIDAY}T19:59:45-05:00"),
                                            "PAYMESH_CLOCK_STARTED_AT": str(started_at)})
    try:
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        assert time.time() - started_at < 14, "the mesh took too long to start for this test's clock"
        before = await submit(mesh, pki_dir, "atm", order("cut-1959", loans[0], 2_000))
        await asyncio.sleep(max(0.0, started_at + 16.5 - time.time()))  # 20:00:01 and a half in Lima
        after = await submit(mesh, pki_dir, "atm", order("cut-2001", loans[1], 2_000))
        assert (before.value_date, before.business_date) == (FRIDAY, FRIDAY)
        assert (after.value_date, after.business_date) == (FRIDAY, MONDAY)

        # Day files: the header's date is checked before any line is applied.
        lines = [order(f"file-{n}", loans[2 + n], 1_000) for n in range(2)]
        for header_date, code, field in [("not-a-date", grpc.StatusCode.INVALID_ARGUMENT, "header.business_date"),
                                         ("2001-01-01", grpc.StatusCode.FAILED_PRECONDITION, "header.business_date"),
                                         ("2026-11-28", grpc.StatusCode.FAILED_PRECONDITION, "header.business_date"),
                                         ("2026-11-18", grpc.StatusCode.FAILED_PRECONDITION, "header.business_date")]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await upload(mesh, pki_dir, f"bad-{header_date}", header_date, lines)
            assert refused.value.code() == code, (header_date, refused.value.details())
            assert field_violations(refused.value) == [field], refused.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await upload(mesh, pki_dir, "bad-line-date", FRIDAY, lines, collection_date="2026-11-31")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # A file collected on Thursday, uploaded on Friday after the cut-off: Thursday's value date, booked Monday.
        reply = await upload(mesh, pki_dir, "thursday-file", "2026-11-26", lines)
        assert {(r.payment.value_date, r.payment.business_date) for r in reply.results} == {("2026-11-26", MONDAY)}

        # Closing: a malformed date, a day to come, a weekend, then a day closed twice.
        for day, code in [("27/11/2026", grpc.StatusCode.INVALID_ARGUMENT),
                          ("2026-02-30", grpc.StatusCode.INVALID_ARGUMENT),
                          (MONDAY, grpc.StatusCode.FAILED_PRECONDITION),
                          ("2026-11-22", grpc.StatusCode.FAILED_PRECONDITION)]:
            refused = await close_refused(mesh, pki_dir, day)
            assert refused.code() == code, (day, refused.details())
        first = await close(mesh, pki_dir, FRIDAY)
        assert first.file_name == "GLPOST.D261127" and first.file_sequence == 1 and first.hash_total > 0
        assert await close(mesh, pki_dir, FRIDAY) == first

        env = dict(os.environ, PAYMESH_PKI_DIR=str(pki_dir))
        bad = subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "reconcile", "--date", "2026-13-01"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and "2026-13-01" in bad.stderr, bad.stderr
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, OPERATOR) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await ops_grpc.PaymentOperationsServiceStub(ch).SummarizePayments(
                    ops_api.SummarizePaymentsRequest(business_date="yesterday"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        stop_mesh(mesh)


async def test_a_reversal_two_business_days_later_is_booked_on_its_own_day(tmp_path, pki_dir, settings, monkeypatch):
    wednesday, thursday = "2026-11-25", "2026-11-26"
    loans = open_loans(types_pb2.LOAN_TYPE_VEHICLE)
    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{wednesday}T10:00:00-05:00"))
    try:
        paid = await submit(mesh, pki_dir, "store", order("rev-wed", loans[0], 3_000))
        assert (paid.status, paid.business_date) == (types_pb2.PAYMENT_STATUS_APPLIED, wednesday)
        await close(mesh, pki_dir, wednesday)
    finally:
        stop_mesh(mesh)
    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{thursday}T10:00:00-05:00"))
    try:
        other = await submit(mesh, pki_dir, "store", order("rev-thu", loans[1], 3_000))
        assert other.business_date == thursday
        await close(mesh, pki_dir, thursday)
    finally:
        stop_mesh(mesh)
    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{FRIDAY}T10:00:00-05:00"))
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", "store")) as ch:
            reply = await api_grpc.PaymentServiceStub(ch).ReversePayment(api.ReversePaymentRequest(
                payment_id=paid.payment_id, reason="drawer did not balance", idempotency_key="rev-1"), timeout=10)
        reversed_payment = reply.payment
        assert reversed_payment.status == types_pb2.PAYMENT_STATUS_REVERSED
        assert (reversed_payment.business_date, reversed_payment.reversal_business_date) == (wednesday, FRIDAY)
        by_day = {}
        for day in (wednesday, thursday, FRIDAY):
            outcome = await reconciled(settings, day)
            assert outcome.exit_code == 0, reconcile.report(outcome, day, show_all=False)
            by_day[day] = [(p.posting.payment_id, p.posting.business_date) for p in await postings(mesh, pki_dir, day)]
        assert by_day[wednesday] == [(paid.payment_id, wednesday)]  # as it was reconciled on Wednesday
        assert by_day[FRIDAY] == [(paid.payment_id, FRIDAY)]  # the reversal, on the day it happened
    finally:
        stop_mesh(mesh)


async def test_a_posting_the_bridge_refuses_is_kept_listed_and_replayable(tmp_path, pki_dir):
    """The old router forgot an outbox row whatever its peer answered; a refusal is now kept."""
    from payment_router.orders import PaymentIds
    from paymesh.pki import payment_id_secret_path
    from tests.mainframe_bridge.support import post_all, posting

    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{FRIDAY}T10:00:00-05:00"), PAYMESH_METRICS_PORT="0")
    try:
        # Someone already used the posting id this payment will have, with other content: the bridge refuses it.
        # (A test holds the routers' secret; a channel cannot work an id out.)
        payment_id = PaymentIds.from_file(payment_id_secret_path(pki_dir)).of("atm", "refused-posting")
        squatter = posting(1, date=FRIDAY)
        squatter.posting_id = squatter.payment_id = payment_id
        async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir,
                                   Identity("service", "payment-router")) as ch:
            await post_all(bridge_grpc.MainframeBridgeServiceStub(ch), [squatter])
        paid = await submit(mesh, pki_dir, "atm",
                            order("refused-posting", open_loans(types_pb2.LOAN_TYPE_CASH)[0], 2_000))
        assert paid.payment_id == payment_id and paid.status == types_pb2.PAYMENT_STATUS_APPLIED
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, OPERATOR) as ch:
            operations = ops_grpc.PaymentOperationsServiceStub(ch)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                listed = (await operations.ListRefusedDeliveries(ops_api.ListRefusedDeliveriesRequest())).deliveries
                if listed:
                    break
                await asyncio.sleep(0.1)
            assert [(d.topic, d.payment_id) for d in listed] == [("posting", payment_id)]
            assert listed[0].rejection.reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
            replayed = await operations.ReplayRefusedDeliveries(ops_api.ReplayRefusedDeliveriesRequest(all=True))
            assert replayed.replayed_count == 1
            await asyncio.sleep(1.0)  # sent again, refused again: still there, for the operator
            again = (await operations.ListRefusedDeliveries(ops_api.ListRefusedDeliveriesRequest())).deliveries
            assert [d.payment_id for d in again] == [payment_id]
            assert again[0].refuse_time.ToNanoseconds() > listed[0].refuse_time.ToNanoseconds()
        assert "peer refused an outbox row" in mesh["payment-router"].log()
        # What k8s/monitoring/alerts.yaml pages on.
        families = scrape(int((tmp_path / "run" / "payment-router-metrics.port").read_text()))
        assert sample_value(families["paymesh_queue_depth"], "paymesh_queue_depth", queue="router.outbox.refused") == 1
        assert sample_value(families["paymesh_outbox_refused"], "paymesh_outbox_refused_total", topic="posting",
                            reason="ERROR_REASON_IDEMPOTENCY_KEY_REUSED") == 2
    finally:
        stop_mesh(mesh)


async def test_the_reconciliation_catches_each_break_by_payment_id(tmp_path, pki_dir, settings, monkeypatch):
    mesh = start_mesh(tmp_path, pki_dir, **clock(f"{FRIDAY}T10:00:00-05:00"))
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        paid = [await submit(mesh, pki_dir, "atm", order(f"catch-{n}", loan_id, 5_000 + n))
                for n, loan_id in enumerate(loans[:5])]
        assert all(p.status == types_pb2.PAYMENT_STATUS_APPLIED for p in paid)
        clean = await reconciled(settings, FRIDAY)
        assert clean.exit_code == 0, reconcile.report(clean, FRIDAY, show_all=False)
        plus, minus, twice, missing, split = (p.payment_id for p in paid)

        core = sqlite3.connect(tmp_path / "data" / "core-cash.db")
        with core:
            # +1 cent on one payment, -1 on another: the day's totals still agree.
            core.execute("UPDATE movements SET amount_minor = amount_minor + 1 WHERE payment_id = ?", (plus,))
            core.execute("UPDATE movements SET amount_minor = amount_minor - 1 WHERE payment_id = ?", (minus,))
            # A payment applied twice, as a second movement.
            core.execute("INSERT INTO movements (movement_id, kind, payment_id, loan_id, business_date, channel,"
                         " currency_code, amount_minor, request_digest, result, loan_before)"
                         " SELECT movement_id || '-again', kind, payment_id, loan_id, business_date, channel,"
                         " currency_code, amount_minor, request_digest, result, loan_before"
                         " FROM movements WHERE payment_id = ?", (twice,))
        core.close()
        book = sqlite3.connect(tmp_path / "data" / "mainframe-emulator.db")
        with book:
            # A posting the mainframe lost.
            book.execute("DELETE FROM entries WHERE posting_seq IN (SELECT seq FROM postings WHERE payment_id = ?)",
                         (missing,))
            book.execute("DELETE FROM postings WHERE payment_id = ?", (missing,))
            # One cent moved from one part of the payment to another (interest to penalty, say):
            # still balanced, the same total, a wrong split.
            seq = book.execute("SELECT seq FROM postings WHERE payment_id = ?", (split,)).fetchone()[0]
            (_, took), (_, gave) = book.execute(
                "SELECT account, line FROM entries WHERE posting_seq = ? AND side = 'C' ORDER BY amount DESC LIMIT 2",
                (seq,)).fetchall()
            book.execute("UPDATE entries SET amount = amount - 1 WHERE posting_seq = ? AND line = ?", (seq, took))
            book.execute("UPDATE entries SET amount = amount + 1 WHERE posting_seq = ? AND line = ?", (seq, gave))
        book.close()

        broken = await reconcile.reconcile(reconcile.default_sources(settings), FRIDAY)
        report = reconcile.report(broken, FRIDAY, show_all=False)
        print("\n" + report)  # what an operator reads (docs/business-day.md shows it)
        assert broken.exit_code == 1, report
        detail = {payment_id: [line for line in report.splitlines() if payment_id in line]
                  for payment_id in (plus, minus, twice, missing, split)}
        assert all(detail.values()), report
        assert any("amount" in line for line in detail[plus] + detail[minus]), report
        assert any("twice" in line for line in detail[twice]), report
        assert any("missing" in line for line in detail[missing]), report
        assert any("split" in line for line in detail[split]), report
    finally:
        stop_mesh(mesh)


def test_a_day_in_lima_is_not_the_servers_utc_day():
    # 19:30 in Lima is 00:30 UTC of the next day: the payment's dates are Lima's.
    from paymesh.business_calendar import BusinessCalendar
    instant = dt.datetime(2026, 11, 28, 0, 30, tzinfo=dt.UTC)
    assert BusinessCalendar().value_date(instant).isoformat() == FRIDAY
