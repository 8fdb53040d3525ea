"""Benchmark: what one metrics sample's reads cost, on stores as big as a bad day makes them (the reads
each service runs every PAYMESH_METRICS_SAMPLE_SECONDS while /metrics or OTLP is on, on its store's
read-only connection and thread, paymesh.sqlite.Store.read: the store's commits do not wait for them).

    .venv/bin/python bench/bench_metrics_sample.py [--postings 500000] [--queued 50000] [--outbox 50000]
                                                   [--confirmations 200000] [--consumers 20]

Real schemas (payment_router.journal, mainframe_bridge.queue_store, confirmations.log) in SQLite files
on disk, filled with the given rows; prints each read's median and worst time over 20 runs, and the
figures it read (so a wrong read shows).
"""

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confirmations import log as confirmation_log  # noqa: E402
from confirmations import webhook_store  # noqa: E402
from mainframe_bridge import queue_store  # noqa: E402
from payment_router import journal  # noqa: E402
from paymesh.sqlite import Store  # noqa: E402

RUNS = 20
DAYS = ("2026-11-25", "2026-11-26", "2026-11-27")


def timed(name: str, read) -> None:
    seconds, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = read()
        seconds.append(time.perf_counter() - started)
    figures = result if not isinstance(result, list) or len(result) < 4 else f"{len(result)} rows"
    print(f"{name:34} median {statistics.median(seconds) * 1000:7.2f} ms   worst {max(seconds) * 1000:7.2f} ms"
          f"   read {figures}")


def bridge(folder: Path, postings: int, queued: int) -> None:
    store = Store(folder / "bridge.db", queue_store.SCHEMA, queue_store.ADDED_COLUMNS, queue_store.INDEXES)
    store.close()
    connection = sqlite3.connect(folder / "bridge.db")
    now = time.time()
    rows = ((f"P{n:09}", DAYS[n * len(DAYS) // postings], 1, 1, 0, "PEN", 100, b"d", b"frame",
             queue_store.QUEUED if n >= postings - queued else queue_store.POSTED, now - (postings - n) * 0.01, "")
            for n in range(postings))
    with connection:
        connection.executemany(
            "INSERT INTO postings (posting_id, business_date, channel, loan_type, reversal, currency, amount, digest,"
            " frame, status, queued_at, original_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        connection.execute("INSERT INTO business_days (business_date, state) VALUES (?, ?)",
                           (DAYS[0], queue_store.CLOSED))
    timed(f"bridge queue ({postings:,} postings)", lambda: queue_store.queue_figures(connection))
    timed("bridge day to close", lambda: queue_store.day_to_close(connection, DAYS[-1]))
    connection.close()


def router(folder: Path, rows: int) -> None:
    Store(folder / "journal.db", journal.SCHEMA, journal.ADDED_COLUMNS, journal.INDEXES).close()
    connection = sqlite3.connect(folder / "journal.db")
    now = time.time()
    topics = ("posting", "confirmation", "confirmation-batch")
    with connection:
        connection.executemany(
            "INSERT INTO outbox (topic, item_key, body, traceparent, queued_at) VALUES (?, ?, ?, ?, ?)",
            ((topics[n % 3], f"K{n:09}", b"x" * 200, "", now - n * 0.01) for n in range(rows)))
    timed(f"router outbox ({rows:,} rows waiting)", lambda: connection.execute(
        "SELECT topic, count(*), min(queued_at) FROM outbox WHERE refused_at IS NULL GROUP BY topic").fetchall())
    connection.close()


def confirmations(folder: Path, count: int, consumers: int) -> None:
    Store(folder / "confirmations.db", confirmation_log.SCHEMA + webhook_store.SCHEMA,
          added_columns=webhook_store.ADDED_COLUMNS).close()
    connection = sqlite3.connect(folder / "confirmations.db")
    with connection:
        connection.executemany(
            "INSERT INTO confirmation (sequence, payment_id, status, channel, loan_type, business_date, currency,"
            " amount_minor, body) VALUES (?, ?, 2, ?, 1, ?, 'PEN', 100, ?)",
            ((n + 1, f"P{n:09}", 1 + n % 5, DAYS[-1], b"x" * 150) for n in range(count)))
        connection.executemany("INSERT INTO consumer (channel, name, acked_sequence) VALUES (?, ?, ?)",
                               ((1 + n % 5, f"consumer-{n}", n * count // consumers) for n in range(consumers)))
    lags = confirmation_log.consumer_lags(connection)
    timed(f"consumer lag ({consumers} on {count:,})", lambda: confirmation_log.consumer_lags(connection))
    print(f"{'':34} largest lag {max(lag for _, _, lag in lags):,}")
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=500_000)
    parser.add_argument("--queued", type=int, default=50_000)
    parser.add_argument("--outbox", type=int, default=50_000)
    parser.add_argument("--confirmations", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sample-") as tmp:
        bridge(Path(tmp), args.postings, args.queued)
        router(Path(tmp), args.outbox)
        confirmations(Path(tmp), args.confirmations, args.consumers)


if __name__ == "__main__":
    main()
