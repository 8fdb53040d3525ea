"""Benchmark: what the router's journal costs the router's own process per payment, on either backend,
and what dropping a day gives back (payment_router.journal in-process, no mesh around it).

    .venv/bin/python bench/bench_journal.py [--journal postgres|sqlite] [--payments 10000]
                                            [--concurrency 100] [--file-days 2]

The phases, as the router calls the journal:
  - online: `concurrency` callers at once, each accepting one payment and recording its result with a
    posting and a confirmation for the outbox (the group commit groups them); then their peers'
    acknowledgements, 200 to a call (the rows deleted, the confirmation sequences kept);
  - file: the same payments' count again as a day file's, accepted 500 to a call, its lines kept,
    recorded (a posting and a confirmation each), acknowledged, then its results read back by pages;
  - retry: every online payment sent again (each found by its id, none journaled twice);
  - drop: the first day dropped (paymesh archive --drop's journal part), the store's size in use before
    and after, as DroppedBusinessDay reports it.
Each phase prints payments/s and the process's CPU ms per payment (time.process_time: the event loop
and the store's thread, psycopg's work included; the PostgreSQL server's own CPU is not). The
payments are booked on `file-days` days, as across a close. Prints figures, asserts nothing.
"""

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.common.v1 import types_pb2  # noqa: E402
from bank.ledger.v1 import ledger_pb2  # noqa: E402
from bank.payments.v1 import payments_pb2  # noqa: E402
from payment_router.journal import (CONFIRMATIONS, CONFIRMATIONS_BATCH, POSTINGS, Accepted, Journal,  # noqa: E402
                                    open_store)
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402

DAYS = ("2026-11-27", "2026-11-30", "2026-12-01", "2026-12-02")
FILE_LINES_PER_CALL = 500
ACKNOWLEDGED_PER_CALL = 200


def payment(n: int, days: int, prefix: str) -> payments_pb2.Payment:
    day = DAYS[n % days]
    return payments_pb2.Payment(
        payment_id=f"PAY-{prefix}{n:08}", channel=types_pb2.CHANNEL_ATM, idempotency_key=f"{prefix}{n:08}",
        loan_id=f"CSH-{n % 5000:06}", loan_type=types_pb2.LOAN_TYPE_CASH, status=types_pb2.PAYMENT_STATUS_ACCEPTED,
        amount=types_pb2.Money(currency_code="PEN", amount_minor=10_000 + n), business_date=day, value_date=day)


def applied(p: payments_pb2.Payment) -> payments_pb2.Payment:
    result = payments_pb2.Payment()
    result.CopyFrom(p)
    result.status = types_pb2.PAYMENT_STATUS_APPLIED
    result.result_time.FromNanoseconds(time.time_ns())
    return result


def outbox_of(p: payments_pb2.Payment, topic: str = CONFIRMATIONS) -> list[tuple[str, str, bytes, str]]:
    posting = ledger_pb2.Posting(posting_id=f"MOV-{p.payment_id}", payment_id=p.payment_id,
                                 business_date=p.business_date)
    return [(POSTINGS, posting.posting_id, posting.SerializeToString(), ""),
            (topic, p.payment_id, b"confirmation" * 20, "")]


class Phase:
    def __init__(self, name: str, payments: int):
        self.name, self.payments = name, payments

    def __enter__(self) -> "Phase":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        print(f"{self.name:8} {self.payments:>8,} {self.payments / wall:>12,.0f} {cpu * 1000 / self.payments:>14.3f}")


async def measure(journal: Journal, args) -> None:
    online = [payment(n, args.file_days, "O") for n in range(args.payments)]
    file = [payment(n, args.file_days, "F") for n in range(args.payments)]
    sequence = iter(range(1, 10 * args.payments))
    print(f"{'PHASE':8} {'PAYMENTS':>8} {'PAYMENTS/S':>12} {'CPU MS/PAYMENT':>14}")

    async def caller(payments: list[payments_pb2.Payment]) -> None:
        for p in payments:
            (outcome,) = await journal.accept([Accepted(p, f"hash-{p.payment_id}")])
            assert outcome.new, p.payment_id
            await journal.record(applied(p), outbox_of(p))

    with Phase("online", len(online)):
        await asyncio.gather(*(caller(online[k::args.concurrency]) for k in range(args.concurrency)))
        for start in range(0, len(online), ACKNOWLEDGED_PER_CALL):  # as the outbox's forwarders do
            acknowledged = online[start:start + ACKNOWLEDGED_PER_CALL]
            await journal.done([(POSTINGS, [f"MOV-{p.payment_id}" for p in acknowledged], {}),
                                (CONFIRMATIONS, [p.payment_id for p in acknowledged],
                                 {p.payment_id: next(sequence) for p in acknowledged})])
    with Phase("file", len(file)):
        for start in range(0, len(file), FILE_LINES_PER_CALL):
            lines = file[start:start + FILE_LINES_PER_CALL]
            await journal.accept([Accepted(p, f"hash-{p.payment_id}", batch_id="FILE-1") for p in lines],
                                 types_pb2.PRIORITY_BATCH)
            await journal.record_batch_lines(types_pb2.CHANNEL_STORE, "FILE-1", [
                (start + number, p, True) for number, p in enumerate(lines, start=1)])
            await asyncio.gather(*(journal.record(applied(p), outbox_of(p, CONFIRMATIONS_BATCH),
                                                  types_pb2.PRIORITY_BATCH) for p in lines))
            await journal.done([(POSTINGS, [f"MOV-{p.payment_id}" for p in lines], {}),
                                (CONFIRMATIONS_BATCH, [p.payment_id for p in lines],
                                 {p.payment_id: next(sequence) for p in lines})])
        after_line = 0
        while page := await journal.batch_results(types_pb2.CHANNEL_STORE, "FILE-1", after_line,
                                                  FILE_LINES_PER_CALL):
            after_line = page[-1][0]
    with Phase("retry", len(online)):
        async def again(payments: list[payments_pb2.Payment]) -> None:
            for p in payments:
                (outcome,) = await journal.accept([Accepted(p, f"hash-{p.payment_id}")])
                assert not outcome.new
        await asyncio.gather(*(again(online[k::args.concurrency]) for k in range(args.concurrency)))
    started = time.perf_counter()
    dropped = await journal.drop_day(DAYS[0], keys_kept_from="2026-08-29")
    print(f"drop of {DAYS[0]}: {dropped.dropped_count:,} payments in {time.perf_counter() - started:.2f} s;"
          f" store in use {dropped.store_bytes_before / 1e6:.1f} MB before, {dropped.store_bytes_after / 1e6:.1f} MB"
          f" after")


async def main(args) -> None:
    with contextlib.ExitStack() as stack:
        environ = {}
        if args.journal == "postgres":  # a server of the bench's own, on loopback (its folder under /tmp)
            folder = Path(tempfile.mkdtemp(prefix="paymesh-bench-pg-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)  # (after the server stopped)
            server = stack.enter_context(LocalPostgres(folder))
            environ["PAYMESH_PAYMENT_ROUTER_DATABASE_URL"] = server.create_database("payment_router")
        journal = Journal(open_store(Path(stack.enter_context(tempfile.TemporaryDirectory())), environ))
        try:
            print(f"the router's journal on {args.journal}, {args.payments:,} payments a phase over"
                  f" {args.file_days} booking days")
            await measure(journal, args)
        finally:
            await journal.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100, help="online callers at once")
    parser.add_argument("--file-days", type=int, default=2, choices=range(1, len(DAYS) + 1),
                        help="booking days the payments are spread over")
    asyncio.run(main(parser.parse_args()))
