"""Benchmark: what dropping an archived day gives back, in the bridge's queue and the confirmation log,
on PostgreSQL (the day's partition dropped) and on SQLite (the day's rows deleted, their pages freed).

    .venv/bin/python bench/bench_day_drop.py [--rows 10000]

Real stores (mainframe_bridge.queue_store, confirmations.log): a SQLite file each, and a database each of
a PostgreSQL server of the bench's own on loopback. Each gets --rows postings (or confirmations) of one
day and a few of the next; the day is closed and dropped by the stores' own drop_day, and the line is
the DropBusinessDay answer's store_bytes_before -> store_bytes_after, as `paymesh archive --drop` prints it.
"""

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.common.v1 import types_pb2  # noqa: E402
from confirmations import client, webhook_store  # noqa: E402
from confirmations import log as confirmation_log  # noqa: E402
from mainframe_bridge import queue_store, records  # noqa: E402
from paymesh.business_calendar import bank_calendar  # noqa: E402
from paymesh.postgres import PostgresStore  # noqa: E402
from paymesh.sqlite import Store  # noqa: E402
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402

DAY, NEXT_DAY = "2026-11-27", "2026-11-30"
NEXT_DAY_ROWS = 10


def posting(posting_id: str, day: str) -> queue_store.Queued:
    entries = (records.Entry(f"{posting_id}:1", "110504", "D", "PEN", 1000),
               records.Entry(f"{posting_id}:2", "140101", "C", "PEN", 1000))
    frame = records.encode_posting(records.PostingRecord(posting_id, records.date_number(day), f"pay-{posting_id}",
                                                         3, 1, entries))
    return queue_store.Queued(posting_id, day, 3, 1, False, "PEN", 1000, b"digest-of-" + posting_id.encode(), frame)


async def drop_from_queue(store, rows: int) -> tuple[int, int]:
    items = [posting(f"MOV-{n}", DAY) for n in range(rows)] + [posting(f"NEXT-{n}", NEXT_DAY)
                                                               for n in range(NEXT_DAY_ROWS)]
    await store.transaction(queue_store.enqueue, items, bank_calendar())
    await store.transaction(queue_store.settle, [(seq, queue_store.Standing(queue_store.POSTED, f"REF{seq}"))
                                                 for seq in range(1, len(items) + 1)])
    await store.transaction(queue_store.begin_close, DAY)
    await store.transaction(queue_store.finish_close, DAY, b"")
    dropped = await store.transaction(queue_store.drop_day, DAY, "2026-08-29")
    return dropped.store_bytes_before, dropped.store_bytes_after


async def drop_from_log(store, rows: int) -> tuple[int, int]:
    items = [client.confirmation(f"pay-{n}", types_pb2.CHANNEL_ATM, business_date=DAY) for n in range(rows)] + [
        client.confirmation(f"next-{n}", types_pb2.CHANNEL_ATM, business_date=NEXT_DAY) for n in range(NEXT_DAY_ROWS)]
    await store.transaction(confirmation_log.append, [items])
    dropped = await store.transaction(confirmation_log.drop_day, DAY)
    return dropped.store_bytes_before, dropped.store_bytes_after


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="postings or confirmations of the dropped day")
    args = parser.parse_args()
    stores = (("bridge queue", drop_from_queue, queue_store.POSTGRES_SCHEMA_DIR, queue_store.SCHEMA),
              ("confirmation log", drop_from_log, confirmation_log.POSTGRES_SCHEMA_DIR,
               confirmation_log.SCHEMA + webhook_store.SCHEMA))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="bench-day-drop-pg-"))  # under /tmp itself: as root, nobody runs it
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        server = stack.enter_context(LocalPostgres(folder))
        for n, (name, drop, schema_dir, sqlite_schema) in enumerate(stores):
            backends = (("PostgreSQL", PostgresStore(server.create_database(f"drop_{n}"), schema_dir)),
                        ("SQLite", Store(Path(tmp) / f"store-{n}.db", sqlite_schema)))
            for backend, store in backends:
                try:
                    before, after = await drop(store, args.rows)
                finally:
                    store.close()
                print(f"{name:17} {backend:10} {args.rows:,} rows of the day dropped:"
                      f" in use {before // 1024:,} KiB -> {after // 1024:,} KiB")


if __name__ == "__main__":
    asyncio.run(main())
