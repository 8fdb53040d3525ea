"""Benchmark: postings per second from the bridge's PostEntries stream to the
mainframe emulator and back to POSTED, durability kept (SQLite WAL, synchronous
FULL, commit before every ack, on both sides; with --postgres the bridge's queue in its
own database on a PostgreSQL server of the bench's own, fsync on, every write fenced by
the bridge's lease).

The bridge and the emulator run as their own processes on loopback with mTLS/TLS;
this script plays the router: N postings on one stream, then waits until the
bridge reports every one POSTED.

    .venv/bin/python bench/bench_bridge.py [--postings 20000] [--per-message 250] [--traces unsampled|sampled|none]
                                           [--metrics] [--postgres]

Besides the rates it prints each process's CPU time per posting (utime + stime
from /proc), the figure that counts when the mesh is CPU-bound.
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.ledger.v1 import ledger_pb2  # noqa: E402
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_service  # noqa: E402
from paymesh_tools.ledger_traffic import emulator_book, post_all, posting, stub, traceparent, wait_until_posted  # noqa: E402
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for_status(router, posting_id: str, status: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    request = bridge_pb2.GetPostingStatusRequest(posting_id=posting_id)
    while (await router.GetPostingStatus(request, timeout=10)).status != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{posting_id} not in status {status} after {timeout} s")
        await asyncio.sleep(0.05)


async def bench(postings: int, per_message: int, traces: str, metrics: bool, postgres: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp)
        pki_dir = home / "pki"
        ensure_dev_pki(pki_dir)
        env: dict[str, str] = {}
        if postgres:  # its folder under /tmp itself: as root the server runs as nobody
            folder = Path(tempfile.mkdtemp(prefix="bench-bridge-pg-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            server = stack.enter_context(LocalPostgres(folder))
            env["PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL"] = server.create_database("mainframe_bridge")
        emulator = start_service("mainframe-emulator", home, pki_dir)
        # With --metrics, /metrics is on (as on Kubernetes): the counters count and the gauges are sampled.
        # (an empty PAYMESH_METRICS_PORT is unset: no port)
        bridge = start_service("mainframe-bridge", home, pki_dir, START_TIMEOUT,
                               PAYMESH_MAINFRAME_EMULATOR_ADDR=emulator.address, PAYMESH_LOG_LEVEL="WARNING",
                               PAYMESH_METRICS_PORT="0" if metrics else "", **env)
        try:
            batch = [posting(n) for n in range(postings)]
            # Each with a traceparent, as the router sends them: the bridge makes a span per posting
            # (recorded when the trace is sampled).
            traceparents = None if traces == "none" else [traceparent(n, traces == "sampled") for n in range(postings)]
            channel, router = stub(bridge.address, pki_dir)
            async with channel:
                await post_all(router, [posting(0, prefix="warm-up")])
                await wait_until_posted(router, 1)
                cpu_before = {p.name: cpu_seconds(p.process.pid) for p in (bridge, emulator)}
                started = time.perf_counter()
                acks = await post_all(router, batch, per_message, traceparents)
                acked = time.perf_counter()
                # The mainframe answers in order, so the last posting POSTED means all are. (Its status is
                # polled rather than the summary, a scan of the whole day charged to the bridge's CPU.)
                await wait_for_status(router, batch[-1].posting_id, ledger_pb2.POSTING_STATUS_POSTED)
                done = time.perf_counter()
                cpu = {p.name: cpu_seconds(p.process.pid) - cpu_before[p.name] for p in (bridge, emulator)}
                counts = await wait_until_posted(router, postings + 1, timeout=10)
            posted = counts.get(ledger_pb2.POSTING_STATUS_POSTED, 0) - 1
            assert len(acks) == postings and posted == postings, (len(acks), counts)
            assert len(emulator_book(home)) == postings + 1
            print(f"postings              {postings} ({per_message} per stream message, 3 ledger entries each,"
                  f" traceparents: {traces}, metrics {'on' if metrics else 'off'},"
                  f" queue on {'PostgreSQL' if postgres else 'SQLite'})")
            print(f"acknowledged (queued) {acked - started:6.2f} s   {postings / (acked - started):8.0f} postings/s")
            print(f"all POSTED            {done - started:6.2f} s   {postings / (done - started):8.0f} postings/s"
                  " end to end")
            for name, seconds in cpu.items():
                print(f"{name + ' CPU':21} {seconds:6.2f} s   {seconds / postings * 1000:8.3f} ms per posting")
        finally:
            bridge.kill()
            emulator.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=250)
    parser.add_argument("--traces", choices=("unsampled", "sampled", "none"), default="unsampled",
                        help="the traceparents sent beside the postings: unsampled, as the router sends them when"
                             " no exporter is set (the default); sampled, as when traces are exported; or none")
    parser.add_argument("--metrics", action="store_true",
                        help="the bridge's /metrics port on (PAYMESH_METRICS_PORT), as on Kubernetes")
    parser.add_argument("--postgres", action="store_true",
                        help="the bridge's queue on PostgreSQL (a server of the bench's own, on loopback)"
                             " instead of SQLite")
    args = parser.parse_args()
    asyncio.run(bench(args.postings, args.per_message, args.traces, args.metrics, args.postgres))


if __name__ == "__main__":
    main()
