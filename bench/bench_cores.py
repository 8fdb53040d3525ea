"""Benchmark: one loan core (a real subprocess, mTLS, SQLite with synchronous=FULL, or with
--postgres its own database on a PostgreSQL server of the bench's own, fsync on, with the core's
lease and fenced writes) applying N payments that arrive on ONE ApplyPayments stream in micro-batches.

    .venv/bin/python bench/bench_cores.py [--core core-cash] [--payments 20000] [--batch 200] [--window 8]
                                          [--no-traceparents] [--postgres]

Prints payments/s, the p50/p99 latency per payment (from the moment its micro-batch
is written to the moment its answer, sent only after COMMIT, arrives) and the core's CPU
per payment. Each payment carries a traceparent, as the router sends one (the core then
records a span per payment); --no-traceparents leaves them out.
"""

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.loans.v1 import loan_core_service_pb2 as core_pb2  # noqa: E402
from bank.loans.v1 import loan_core_service_pb2_grpc  # noqa: E402
from loan_core import engine  # noqa: E402
from loan_core.client import payment  # noqa: E402
from loan_core.loan import originate  # noqa: E402
from loan_core.portfolio import generate  # noqa: E402
from paymesh_tools.products import RULES_OF_CORE  # noqa: E402
from paymesh import tls  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh.topology import ROUTER  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_service  # noqa: E402
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402

AS_OF = date(2026, 11, 27)
PORTFOLIO_SIZE = 3000


def payments_for(core: str, count: int) -> list[core_pb2.LoanPayment]:
    """count payments as borrowers make them: each pays its oldest installment due (with
    its fees and penalty) on the business date it falls due, or on AS_OF if it is already
    overdue; 2 % also pay one installment ahead (an adelanto de cuotas). The engine, run here on a
    copy of each loan, says how much, so every payment is one the core applies."""
    rules = RULES_OF_CORE[core]
    terms = [t for t in generate(rules, seed=42, count=PORTFOLIO_SIZE, as_of=AS_OF)
             if t.installments_paid < t.term_months]
    states = {t.loan_id: originate(t, rules) for t in terms}
    clock = {t.loan_id: AS_OF for t in terms}  # each borrower's own business date, never going back
    rng = random.Random(7)
    payments: list[core_pb2.LoanPayment] = []
    while len(payments) < count:
        loan_id = rng.choice(terms).loan_id
        state = engine.as_of(states[loan_id], rules, clock[loan_id])
        due, future = engine.due_installments(state, clock[loan_id])
        if not due and future:  # nothing due yet: the borrower pays on the next due date
            clock[loan_id] = max(clock[loan_id], future[0].due_date)
            state = engine.as_of(states[loan_id], rules, clock[loan_id])
            due, future = engine.due_installments(state, clock[loan_id])
        if not due:
            continue  # paid off
        on = clock[loan_id]
        payoff = engine.payoff_amount(state, on)  # less than the last installment paid before its due date
        amount = min(due[0].outstanding, payoff)
        if future and rng.random() < 0.02:
            amount = min(sum(i.outstanding for i in due) + future[0].scheduled_total, payoff)
        states[loan_id], _ = engine.apply_payment(states[loan_id], rules, amount, on, 0)
        payments.append(payment(f"bench-{len(payments)}", loan_id, amount, state.terms.currency_code, on.isoformat()))
    return payments


def traceparents_for(count: int) -> list[str]:
    """A sampled W3C traceparent per payment, each its own trace, as the router sends them."""
    rng = random.Random(11)
    return [f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64) | 1:016x}-01" for _ in range(count)]


async def run(address: str, pki_dir: Path, payments: list, batch_size: int, window: int,
              traceparents: list[str]) -> tuple[float, list, int]:
    batches = [(payments[i:i + batch_size], traceparents[i:i + batch_size])
               for i in range(0, len(payments), batch_size)]
    sent_at: list[float] = []
    latencies: list[float] = []
    applied = 0
    slots = asyncio.Semaphore(window)
    async with tls.channel_for(address, pki_dir, ROUTER) as channel:
        call = loan_core_service_pb2_grpc.LoanCoreServiceStub(channel).ApplyPayments()

        async def write():
            for batch, parents in batches:
                await slots.acquire()
                sent_at.append(time.perf_counter())
                await call.write(core_pb2.ApplyPaymentsRequest(payments=batch, traceparents=parents))
            await call.done_writing()

        started = time.perf_counter()
        writer = asyncio.create_task(write())
        index = 0
        async for response in call:
            now = time.perf_counter()
            latencies.extend([now - sent_at[index]] * len(response.outcomes))
            applied += sum(1 for o in response.outcomes if o.HasField("applied"))
            index += 1
            slots.release()
        await writer
        elapsed = time.perf_counter() - started
    return elapsed, latencies, applied


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to show what one payment costs the core."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", default="core-cash", choices=sorted(RULES_OF_CORE))
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200, help="payments per stream message")
    parser.add_argument("--window", type=int, default=8, help="messages in flight on the stream")
    parser.add_argument("--traceparents", action=argparse.BooleanOptionalAction, default=True,
                        help="send a traceparent with each payment, as the router does")
    parser.add_argument("--postgres", action="store_true",
                        help="the core on PostgreSQL (a server of the bench's own, on loopback) instead of SQLite")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-cores-"))
    ensure_dev_pki(home / "pki")
    payments = payments_for(args.core, args.payments)
    traceparents = traceparents_for(len(payments)) if args.traceparents else []
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if args.postgres:  # its folder under /tmp itself: as root the server runs as nobody
            folder = Path(tempfile.mkdtemp(prefix="bench-cores-pg-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            server = stack.enter_context(LocalPostgres(folder))
            prefix = args.core.upper().replace("-", "_")
            env[f"PAYMESH_{prefix}_DATABASE_URL"] = server.create_database(args.core.replace("-", "_"))
        core = start_service(args.core, home, home / "pki", PAYMESH_PORTFOLIO_SIZE=str(PORTFOLIO_SIZE),
                             timeout=START_TIMEOUT, PAYMESH_PORTFOLIO_AS_OF=AS_OF.isoformat(),
                             PAYMESH_LOG_LEVEL="WARNING", **env)
        try:
            cpu_before = cpu_seconds(core.process.pid)
            elapsed, latencies, applied = asyncio.run(run(core.address, home / "pki", payments, args.batch,
                                                           args.window, traceparents))
            cpu_after = cpu_seconds(core.process.pid)
        finally:
            core.terminate()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"{args.core}: {len(latencies)} payments on one stream ({applied} applied), "
          f"batches of {args.batch}, {args.window} in flight, "
          f"{'PostgreSQL (fsync on, a fenced lease)' if args.postgres else 'SQLite synchronous=FULL'}, "
          f"{'a traceparent each' if traceparents else 'no traceparents'}")
    print(f"throughput: {len(latencies) / elapsed:,.0f} payments/s in {elapsed:.2f} s")
    print(f"latency per payment: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    if cpu_before is not None and cpu_after is not None:
        print(f"core CPU: {(cpu_after - cpu_before) / len(latencies) * 1e6:.0f} us per payment "
              f"({(cpu_after - cpu_before) / elapsed:.0%} of one CPU; load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
