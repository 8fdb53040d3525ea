"""Benchmark: what Journal.claim costs on a shared (PostgreSQL) router journal, beside a backlog
held in flight (a peer away), and how long another replica takes to claim a dead one's backlog.
Each claim runs on the journal's one store thread, which an online payment's commits share.

    .venv/bin/python bench/bench_outbox_claims.py [--backlog 2000 20000]

A real PostgreSQL server of its own (paymesh_tools.local_postgres), the journal's real schema; for each
backlog of confirmation rows written and held by one replica (as the router writes them): the time to
claim it all (pages of PAGE_ROWS), the median of 20 claims that find nothing behind it (the common
case while the peer is away), the plain read the forwarder did before claims, and, the leases made
to lapse, the time another replica takes to claim them all.
"""

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.common.v1 import types_pb2  # noqa: E402
from bank.confirmations.v1 import confirmations_pb2  # noqa: E402
from bank.payments.v1 import payments_pb2  # noqa: E402
from payment_router.journal import CONFIRMATIONS, Accepted, Journal, open_store  # noqa: E402
from payment_router.outbox import PAGE_ROWS  # noqa: E402
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402

RUNS = 20


async def median_ms(call, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def claim_all(journal: Journal) -> tuple[int, int]:
    """(rows, pages) claimed, page after page, as a forwarder does."""
    after_id, rows, pages = 0, 0, 0
    while page := await journal.claim(CONFIRMATIONS, after_id, PAGE_ROWS[CONFIRMATIONS]):
        after_id, rows, pages = page[-1][0], rows + len(page), pages + 1
    return rows, pages


async def run(url: str, backlog: int) -> None:
    environ = {"PAYMESH_PAYMENT_ROUTER_DATABASE_URL": url}
    holder, other = (Journal(open_store(Path(tempfile.mkdtemp()), environ)) for _ in range(2))
    payments = [payments_pb2.Payment(payment_id=f"PAY-{n:06d}", channel=types_pb2.CHANNEL_ATM, loan_id="CSH-000001",
                                     loan_type=types_pb2.LOAN_TYPE_CASH, status=types_pb2.PAYMENT_STATUS_APPLIED,
                                     business_date="2026-12-03") for n in range(backlog)]
    for start in range(0, backlog, 500):
        chunk = payments[start:start + 500]
        await holder.accept([Accepted(p, "hash") for p in chunk])
        await asyncio.gather(*(holder.record(p, [(CONFIRMATIONS, p.payment_id, confirmations_pb2.Confirmation(
            payment_id=p.payment_id).SerializeToString(), "")]) for p in chunk))
    started = time.perf_counter()
    rows, pages = await claim_all(holder)
    claimed_ms = (time.perf_counter() - started) * 1000
    last_id = (await holder.outbox(CONFIRMATIONS, 0, backlog))[-1][0]
    empty = await median_ms(lambda: holder.claim(CONFIRMATIONS, last_id, PAGE_ROWS[CONFIRMATIONS]))
    plain = await median_ms(lambda: holder.outbox(CONFIRMATIONS, last_id, PAGE_ROWS[CONFIRMATIONS]))
    await holder._store.run(lambda c: c.execute("UPDATE outbox SET claimed_until = now() - interval '1 second'"))
    started = time.perf_counter()
    taken, _ = await claim_all(other)
    taken_ms = (time.perf_counter() - started) * 1000
    print(f"backlog {backlog:,}: claimed {rows:,} rows in {pages} pages, {claimed_ms:,.0f} ms; a claim behind them"
          f" {empty:.2f} ms (the plain read before claims {plain:.2f} ms); their leases lapsed, another replica"
          f" claimed {taken:,} in {taken_ms:,.0f} ms")
    for journal in (holder, other):
        await journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, nargs="+", default=[2000, 20000])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="paymesh-bench-pg-"))
    try:
        with LocalPostgres(folder) as server:
            for backlog in args.backlog:
                asyncio.run(run(server.create_database(f"bench_{uuid.uuid4().hex[:12]}"), backlog))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
