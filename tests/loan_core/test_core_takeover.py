"""A core's lease holder SIGKILLed under load with its standby running, on one PostgreSQL database:
two core-cash processes (real processes, real mTLS, the default lease: TTL 4 s, renewed every 1 s,
polled every 0.25 s). Payments stream to the active one as the router sends them (many messages in
flight); it is killed mid-stream; the client goes to whichever process is SERVING and sends every
message again, as the router does with what was not answered. The standby serves within a few
seconds (measured, printed), and every payment is applied exactly once: the answers are those of a
run without the crash, byte for byte, and the movements table holds each applied payment once.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/loan_core/test_core_takeover.py
prints `takeover: ...` with the measured times."""

import asyncio
import random
import signal
import time
from datetime import date

import grpc
import psycopg

from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub, running_core
from loan_core.portfolio import generate
from paymesh_tools.products import RULES_OF_CORE
from tests.harness import ServiceProcess, health_of, start_service
from tests.loan_core.support import sigkill, stream_with_fault

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()
LOANS = 100
ENV = dict(PAYMESH_PORTFOLIO_SIZE=str(LOANS), PAYMESH_PORTFOLIO_AS_OF=DAY)
RULES = RULES_OF_CORE["core-cash"]
MESSAGES, PER_MESSAGE = 200, 20
ANSWERS_BEFORE_KILL = 40
# The default lease: a holder's last renewal is at most 1 s old when it dies, so its lease lapses
# 3 to 4 s later; the standby looks every 0.25 s.
TAKEOVER_BOUND_SECONDS = 4.0 + 0.25 + 2.0


def the_payments() -> list[list[core_pb2.LoanPayment]]:
    """4,000 payments over 60 open loans, mostly small, some prepayments: several per loan per message."""
    rng = random.Random(19)
    loans = [t for t in generate(RULES, seed=42, count=LOANS, as_of=AS_OF) if t.installments_paid < t.term_months][:60]
    modes = (types_pb2.PREPAYMENT_MODE_REDUCE_TERM, types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT)
    payments = []
    for n in range(MESSAGES * PER_MESSAGE):
        loan = rng.choice(loans)
        amount = rng.randint(200_00, 600_00) if rng.random() < 0.05 else rng.randint(1_00, 40_00)
        payments.append(payment(f"takeover-{n}", loan.loan_id, amount, loan.currency_code, DAY, mode=rng.choice(modes)))
    return [payments[i:i + PER_MESSAGE] for i in range(0, len(payments), PER_MESSAGE)]


async def serving_one(processes: list[ServiceProcess], settings, since: float) -> tuple[ServiceProcess, float]:
    """The first process whose health says SERVING (as Kubernetes' readiness or the router's channel
    would find it), and how long after `since` it did."""
    while True:
        for process in processes:
            if process.process.poll() is None and await health_of(process.address, settings.pki_dir) == "SERVING":
                return process, time.monotonic() - since
        assert time.monotonic() - since < 30, "no process took the lease over"
        await asyncio.sleep(0.02)


def movements_of(url: str) -> tuple[int, int, set[str]]:
    """(payment rows, distinct payment ids, the ids) of the movements table."""
    with psycopg.connect(url) as connection:
        counted = connection.execute(
            "SELECT count(*), count(DISTINCT payment_id) FROM movements WHERE kind = 'payment'").fetchone()
        assert counted is not None
        rows, distinct = counted
        ids = {row[0] for row in connection.execute("SELECT payment_id FROM movements WHERE kind = 'payment'")}
    return rows, distinct, ids


async def loan_states(address: str, settings, loan_ids: set[str]) -> dict:
    async with core_stub(address, settings) as stub:
        return {loan_id: (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id, as_of_date=DAY))).loan
                for loan_id in sorted(loan_ids)}


async def test_the_holder_sigkilled_under_load_the_standby_serves_within_seconds_and_each_payment_applies_once(
        tmp_path, settings, postgres_url):
    batches = the_payments()
    loan_ids = {p.loan_id for batch in batches for p in batch}
    async with running_core(RULES, settings, count=LOANS) as reference:  # SQLite, no crash
        address = f"127.0.0.1:{reference.port}"
        async with core_stub(address, settings) as stub:
            expected = await apply_batches(stub, batches)
        expected_loans = await loan_states(address, settings, loan_ids)
    applied_ids = {o.payment_id for o in expected if o.HasField("applied")}
    assert len(applied_ids) > 3000

    env = dict(ENV, PAYMESH_CORE_CASH_DATABASE_URL=postgres_url)
    first = start_service("core-cash", tmp_path / "first", settings.pki_dir, **env)
    second = start_service("core-cash", tmp_path / "second", settings.pki_dir, **env)
    try:
        pki = settings.pki_dir
        assert (await health_of(first.address, pki), await health_of(second.address, pki)) == (
            "SERVING", "NOT_SERVING"), "the first one started holds the lease; the second is its standby"
        acknowledged, killed_at = await stream_with_fault(first.address, settings, batches,
                                                          ANSWERS_BEFORE_KILL * PER_MESSAGE, lambda: sigkill(first))
        assert first.process.returncode == -9 and len(acknowledged) < len(expected)

        holder, serving_after = await serving_one([first, second], settings, killed_at)
        assert holder is second
        async with core_stub(holder.address, settings) as stub:
            call = stub.ApplyPayments()
            for batch in batches:  # all again: the unanswered first, the answered ones as replays
                await call.write(core_pb2.ApplyPaymentsRequest(payments=batch))
            await call.done_writing()
            outcomes = []
            async for response in call:
                if not outcomes:
                    answered_after = time.monotonic() - killed_at
                outcomes.extend(response.outcomes)
        print(f"\ntakeover: the standby SERVING {serving_after:.2f} s after the holder's SIGKILL, its first "
              f"answer {answered_after:.2f} s after; {len(acknowledged)} payments acknowledged before the kill, "
              f"{len(outcomes)} answered by the standby")
        assert serving_after < TAKEOVER_BOUND_SECONDS

        assert acknowledged == expected[:len(acknowledged)], "an acknowledged answer changed"
        assert outcomes == expected, "every payment answered as without the crash"
        rows, distinct, ids = movements_of(postgres_url)
        assert (rows, distinct) == (len(applied_ids), len(applied_ids)), "0 lost, 0 twice"
        assert ids == applied_ids
        assert await loan_states(holder.address, settings, loan_ids) == expected_loans
        with psycopg.connect(postgres_url) as connection:
            lease = connection.execute("SELECT epoch, holder FROM service_lease WHERE name = 'core-cash'").fetchone()
        assert lease is not None
        epoch, holder_name = lease
        assert epoch == 2 and holder_name.split(":")[1] == str(second.process.pid)
    finally:
        first.kill()
        second.kill()


async def test_a_holder_paused_past_its_lease_is_deposed_and_once_resumed_writes_nothing_and_steps_down(
        tmp_path, settings, postgres_url):
    """SIGSTOP, not SIGKILL: the holder does not know it was replaced. Its standby takes over (a
    transaction the paused holder left open is ended by the server after a TTL); resumed with
    messages still in flight, every write it tries fails the fence, and it steps down NOT_SERVING."""
    batches = the_payments()[:100]
    async with running_core(RULES, settings, count=LOANS) as reference:
        async with core_stub(f"127.0.0.1:{reference.port}", settings) as stub:
            expected = await apply_batches(stub, batches)

    env = dict(ENV, PAYMESH_CORE_CASH_DATABASE_URL=postgres_url)
    first = start_service("core-cash", tmp_path / "first", settings.pki_dir, **env)
    second = start_service("core-cash", tmp_path / "second", settings.pki_dir, **env)
    try:
        paused = asyncio.Event()

        def pause() -> None:
            first.process.send_signal(signal.SIGSTOP)
            paused.set()

        # The holder keeps answering until the fence stops it, so only a refusal may end the stream.
        streaming = asyncio.ensure_future(stream_with_fault(first.address, settings, batches, 20 * PER_MESSAGE,
                                                            pause, ends_as=(grpc.StatusCode.UNAVAILABLE,)))
        await asyncio.wait_for(paused.wait(), 30)
        paused_at = time.monotonic()
        _, took_over_after = await serving_one([second], settings, paused_at)
        first.process.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        while await health_of(first.address, settings.pki_dir) != "NOT_SERVING":
            assert time.monotonic() - resumed_at < 3.0, "the deposed holder did not step down"
            await asyncio.sleep(0.02)
        stepped_down_after = time.monotonic() - resumed_at
        acknowledged, _ = await asyncio.wait_for(streaming, 15)
        print(f"\npaused holder: the standby SERVING {took_over_after:.2f} s after the SIGSTOP; the holder, "
              f"resumed, NOT_SERVING {stepped_down_after:.2f} s after; {len(acknowledged)} payments it had answered")
        assert "lease lost" in first.log()

        async with core_stub(second.address, settings) as stub:
            outcomes = await apply_batches(stub, batches)
        assert acknowledged == expected[:len(acknowledged)] and outcomes == expected
        rows, distinct, ids = movements_of(postgres_url)
        applied_ids = {o.payment_id for o in expected if o.HasField("applied")}
        assert (rows, distinct) == (len(applied_ids), len(applied_ids)) and ids == applied_ids
    finally:
        if first.process.poll() is None:
            first.process.send_signal(signal.SIGCONT)
        first.kill()
        second.kill()
