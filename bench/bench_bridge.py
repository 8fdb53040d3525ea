"""Benchmark: postings per second from the bridge's PostEntries stream to the
mainframe emulator and back to POSTED, durability kept (SQLite WAL, synchronous
FULL, commit before every ack, on both sides).

The bridge and the emulator run as their own processes on loopback with mTLS/TLS;
this script plays the router: N postings on one stream, then waits until the
bridge reports every one POSTED.

    .venv/bin/python bench/bench_bridge.py [--postings 20000] [--per-message 250]
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.ledger.v1 import ledger_pb2  # noqa: E402
from paymesh.pki import ensure_dev_pki  # noqa: E402
from tests.bridge_support import (  # noqa: E402
    emulator_book, post_all, posting, start_bridge, start_emulator, stub, wait_until_posted,
)


async def bench(postings: int, per_message: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        home = Path(tmp)
        pki_dir = home / "pki"
        ensure_dev_pki(pki_dir)
        emulator = start_emulator(home, pki_dir)
        bridge = start_bridge(home, pki_dir, emulator.address, PAYMESH_LOG_LEVEL="WARNING")
        try:
            batch = [posting(n) for n in range(postings)]
            channel, router = stub(bridge.address, pki_dir)
            async with channel:
                await post_all(router, [posting(0, prefix="warm-up")])
                started = time.perf_counter()
                acks = await post_all(router, batch, per_message)
                acked = time.perf_counter()
                counts = await wait_until_posted(router, postings + 1, timeout=300)
                done = time.perf_counter()
            posted = counts.get(ledger_pb2.POSTING_STATUS_POSTED, 0) - 1
            assert len(acks) == postings and posted == postings, (len(acks), counts)
            assert len(emulator_book(home)) == postings + 1
            print(f"postings              {postings} ({per_message} per stream message, 3 ledger entries each)")
            print(f"acknowledged (queued) {acked - started:6.2f} s   {postings / (acked - started):8.0f} postings/s")
            print(f"all POSTED            {done - started:6.2f} s   {postings / (done - started):8.0f} postings/s end to end")
        finally:
            bridge.kill()
            emulator.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=250)
    args = parser.parse_args()
    asyncio.run(bench(args.postings, args.per_message))


if __name__ == "__main__":
    main()
