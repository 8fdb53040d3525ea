"""Two cores on one PostgreSQL database (in this process, real mTLS): the one holding the lease serves,
the other is its standby, NOT_SERVING and refusing every call with UNAVAILABLE; the active one
stopped gracefully hands the lease over at once, and the standby serves what the other applied."""

import asyncio
import time
from datetime import date

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub, running_core
from paymesh import tls
from paymesh.errors import error_info
from paymesh.topology import ROUTER
from paymesh_tools.products import RULES_OF_CORE

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()
RULES = RULES_OF_CORE["core-cash"]


async def health_of(address: str, settings) -> str:
    async with tls.channel_for(address, settings.pki_dir, ROUTER) as channel:
        # types-grpcio-health-checking declares HealthStub without its methods (Check, Watch).
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)  # type: ignore[attr-defined]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_the_standby_is_not_serving_refuses_calls_and_takes_over_when_the_active_one_stops(
        settings, postgres_url, monkeypatch):
    monkeypatch.setenv("PAYMESH_LEASE_POLL_SECONDS", "0.05")
    first = running_core(RULES, settings, count=40, database_url=postgres_url)
    active = await first.__aenter__()
    try:
        async with running_core(RULES, settings, count=40, database_url=postgres_url) as standby:
            active_at, standby_at = f"127.0.0.1:{active.port}", f"127.0.0.1:{standby.port}"
            assert (await health_of(active_at, settings), await health_of(standby_at, settings)) == (
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
                while await health_of(standby_at, settings) != "SERVING":
                    assert time.monotonic() - stopped < 2.0, "the standby did not take over within 2 s"
                    await asyncio.sleep(0.02)
                assert await apply_batches(stub, [batch]) == applied, "the replays of what the other applied"
    finally:
        if first is not None:
            await first.__aexit__(None, None, None)
