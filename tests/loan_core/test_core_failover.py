"""The core's PostgreSQL server lost under load, its streaming standby promoted: a core process on a
primary with a synchronous standby on loopback (paymesh_tools.local_postgres), its URL naming both
hosts (`target_session_attrs=read-write`: libpq picks whichever is the primary). Payments stream to
the core; the primary gets SIGKILL mid-stream; the standby is promoted. The core's store opens its
connection again on the new primary and its lease goes on, and the payments sent again are answered
exactly as a run without the failover: nothing acknowledged was lost (a commit was acknowledged only
once the standby had it), nothing applied twice.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/loan_core/test_core_failover.py
prints `failover: ...` with the measured times."""

import asyncio
import time

import grpc

from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core.client import apply_batches
from loan_core.local import core_stub, running_core
from paymesh_tools.local_postgres import SUPERUSER
from tests.harness import health_of, start_service, write_met_ended_call
from tests.loan_core.support import stream_with_fault
from tests.loan_core.test_core_takeover import ENV, LOANS, PER_MESSAGE, RULES, movements_of, the_payments

ANSWERS_BEFORE_FAILURE = 40


async def test_the_primary_lost_under_load_the_standby_promoted_and_every_payment_applies_once(
        tmp_path, settings, primary_and_standby):
    primary, standby = primary_and_standby
    primary.create_database("core_cash")
    both = (f"postgresql://{SUPERUSER}:{primary.password}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
            f"/core_cash?target_session_attrs=read-write")
    batches = the_payments()[:100]
    async with running_core(RULES, settings, count=LOANS) as reference:
        async with core_stub(f"127.0.0.1:{reference.port}", settings) as stub:
            expected = await apply_batches(stub, batches)

    core = start_service("core-cash", tmp_path / "core", settings.pki_dir, PAYMESH_CORE_CASH_DATABASE_URL=both,
                         **ENV)
    try:
        promoted_after = 0.0

        async def fail_over() -> None:
            nonlocal promoted_after
            assert primary.process is not None
            primary.process.kill()  # the primary's machine lost: SIGKILL, commits in flight
            killed = time.monotonic()
            await asyncio.to_thread(standby.promote)
            promoted_after = time.monotonic() - killed

        acknowledged, failed_at = await stream_with_fault(
            core.address, settings, batches, ANSWERS_BEFORE_FAILURE * PER_MESSAGE, fail_over,
            ends_as=(grpc.StatusCode.UNAVAILABLE,))

        outcomes: list[core_pb2.PaymentOutcome] = []
        async with core_stub(core.address, settings) as stub:
            while not outcomes:  # sent again, as the router does, until the core answers them
                try:
                    outcomes = await apply_batches(stub, batches)
                except grpc.aio.AioRpcError as refused:
                    assert refused.code() == grpc.StatusCode.UNAVAILABLE or write_met_ended_call(refused), refused
                    assert time.monotonic() - failed_at < 30, "the core did not come back on the new primary"
                    await asyncio.sleep(0.2)
        answered_after = time.monotonic() - failed_at
        print(f"\nfailover: the standby promoted {promoted_after:.2f} s after the primary's SIGKILL; the core "
              f"answered again {answered_after:.2f} s after; {len(acknowledged)} payments acknowledged before")
        assert await health_of(core.address, settings.pki_dir) == "SERVING"
        assert acknowledged == expected[:len(acknowledged)] and outcomes == expected
        rows, distinct, ids = movements_of(standby.url("core_cash"))
        applied_ids = {o.payment_id for o in expected if o.HasField("applied")}
        assert (rows, distinct) == (len(applied_ids), len(applied_ids)) and ids == applied_ids
        assert core.process.poll() is None, "the core process went on throughout"
    finally:
        core.kill()
