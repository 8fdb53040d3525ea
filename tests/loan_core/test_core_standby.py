"""Two cores on one PostgreSQL database (in this process, real mTLS): the one holding the lease serves,
the other is its standby, NOT_SERVING and refusing every call with UNAVAILABLE; the active one
stopped gracefully hands the lease over at once, and the standby serves what the other applied.
A core process whose database cannot be opened waits NOT_SERVING, and serves once it can."""

import asyncio
import time
import uuid
from datetime import date

import grpc
import pytest

from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub, running_core
from paymesh.errors import error_info
from paymesh.server import LIVENESS, STORE_RETRY_SECONDS
from paymesh_tools.products import RULES_OF_CORE
from tests.harness import health_of, start_service

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()
RULES = RULES_OF_CORE["core-cash"]



async def test_the_standby_is_not_serving_refuses_calls_and_takes_over_when_the_active_one_stops(
        settings, postgres_url, monkeypatch):
    monkeypatch.setenv("PAYMESH_LEASE_POLL_SECONDS", "0.05")
    first = running_core(RULES, settings, count=40, database_url=postgres_url)
    active = await first.__aenter__()
    try:
        async with running_core(RULES, settings, count=40, database_url=postgres_url) as standby:
            active_at, standby_at = f"127.0.0.1:{active.port}", f"127.0.0.1:{standby.port}"
            assert (await health_of(active_at, settings.pki_dir), await health_of(standby_at, settings.pki_dir)) == (
                "SERVING", "NOT_SERVING")
            batch = [payment(f"s-{n}", "CSH-000002", 10_00, "PEN", DAY) for n in range(3)]
            async with core_stub(active_at, settings) as stub:
                applied = await apply_batches(stub, [batch])
            assert all(o.HasField("applied") for o in applied)
            async with core_stub(standby_at, settings) as stub:
                for call in (apply_batches(stub, [batch]),
                             stub.GetLoan(core_pb2.GetLoanRequest(loan_id="CSH-000002", as_of_date=DAY))):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                    info = error_info(refused.value)
                    assert info is not None and info.metadata["role"] == "standby"

                stopped = time.monotonic()
                await first.__aexit__(None, None, None)  # graceful: the lease is given up
                first = None
                while await health_of(standby_at, settings.pki_dir) != "SERVING":
                    assert time.monotonic() - stopped < 2.0, "the standby did not take over within 2 s"
                    await asyncio.sleep(0.02)
                assert await apply_batches(stub, [batch]) == applied, "the replays of what the other applied"
    finally:
        if first is not None:
            await first.__aexit__(None, None, None)


async def serving_at(address: str, settings) -> bool:
    try:
        return await health_of(address, settings.pki_dir) == "SERVING"
    except grpc.aio.AioRpcError:
        return False


async def test_a_core_whose_database_cannot_be_opened_waits_not_serving_and_serves_once_it_exists(
        tmp_path, settings, postgres_server):
    name = f"later_{uuid.uuid4().hex[:12]}"
    wrong_password = postgres_server.url("postgres", password="not-the-password")
    env = dict(PAYMESH_PORTFOLIO_SIZE="20", PAYMESH_PORTFOLIO_AS_OF=DAY)
    refused = start_service("core-cash", tmp_path / "refused", settings.pki_dir,
                            PAYMESH_CORE_CASH_DATABASE_URL=wrong_password, **env)
    waiting = start_service("core-cash", tmp_path / "waiting", settings.pki_dir,
                            PAYMESH_CORE_CASH_DATABASE_URL=postgres_server.url(name), **env)
    try:
        for core in (refused, waiting):
            pki = settings.pki_dir
            assert (await health_of(core.address, pki), await health_of(core.address, pki, LIVENESS)) == (
                "NOT_SERVING", "SERVING")
        assert "password authentication failed" in refused.log() and "not-the-password" not in refused.log()
        assert f'database \\"{name}\\" does not exist' in waiting.log()
        postgres_server.create_database(name)
        created = time.monotonic()
        # On port 0 the serving port is a new one (the waiting server's is closed): its port file says.
        port_file = waiting.home / "run" / "core-cash.port"
        while not await serving_at(f"127.0.0.1:{port_file.read_text()}", settings):
            assert time.monotonic() - created < STORE_RETRY_SECONDS + 5, "the core did not open its database"
            await asyncio.sleep(0.1)
        assert refused.process.poll() is None and waiting.process.poll() is None, "no crash, no restart"
    finally:
        refused.kill()
        waiting.kill()


async def test_one_channel_over_both_addresses_reaches_the_holder_and_after_a_handover_the_new_one(
        settings, postgres_url, monkeypatch):
    """As PAYMESH_CORE_CASH_ADDR may name both processes: paymesh.tls dials them as one channel that
    calls only the one whose health says SERVING."""
    monkeypatch.setenv("PAYMESH_LEASE_POLL_SECONDS", "0.05")
    first = running_core(RULES, settings, count=40, database_url=postgres_url)
    active = await first.__aenter__()
    try:
        async with running_core(RULES, settings, count=40, database_url=postgres_url) as standby:
            both = f"127.0.0.1:{standby.port},127.0.0.1:{active.port}"  # the standby first: no matter
            async with core_stub(both, settings) as stub:
                for n in range(10):  # a round robin over both would send every other one to the standby
                    [outcome] = await apply_batches(stub, [[payment(f"c-{n}", "CSH-000002", 10_00, "PEN", DAY)]])
                    assert outcome.HasField("applied")
                await first.__aexit__(None, None, None)
                first = None
                handed_over = time.monotonic()
                answers = []
                for n in range(10, 20):  # on the new holder, once it serves (wait_for_ready meanwhile)
                    call = stub.ApplyPayments(wait_for_ready=True)
                    await call.write(core_pb2.ApplyPaymentsRequest(
                        payments=[payment(f"c-{n}", "CSH-000002", 10_00, "PEN", DAY)]))
                    await call.done_writing()
                    answers += [o async for response in call for o in response.outcomes]
                assert all(o.HasField("applied") for o in answers) and time.monotonic() - handed_over < 3.0
                day = await stub.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(business_date=DAY))
                assert [m.payment_id for m in day.movements] == [f"c-{n}" for n in range(20)]
    finally:
        if first is not None:
            await first.__aexit__(None, None, None)
