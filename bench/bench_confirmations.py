"""Benchmark of the confirmation service, run as its own process with real mTLS and SQLite (or, with
--postgres, its own database on a PostgreSQL server of the bench's own, fsync on, with its lease).

Prints (a) the catch-up rate: confirmations per second delivered to one subscriber
reading the log from the beginning, and (b) the live rate: confirmations published
at a steady pace and delivered to a live subscriber, with the publish-to-delivery
latency (p50, p99); and for each, the server process's CPU time per confirmation (utime + stime
from /proc). Confirmations are published with a traceparent each, as the router sends them.

    .venv/bin/python bench/bench_confirmations.py [--catch-up N] [--rate R --seconds S] [--per-message M]
                                                 [--sampled-traces] [--postgres]
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.common.v1 import types_pb2  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2 as pb  # noqa: E402
from confirmations import client  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.textui import format_table  # noqa: E402
from paymesh.topology import ROUTER, Identity  # noqa: E402
from paymesh import tls  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_service  # noqa: E402
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402

ATM = Identity("channel", "atm")
Start = pb.StartPosition


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def traceparent(n: int, sampled: bool) -> str:
    """A W3C traceparent of a trace of its own, as the router sends beside each item: not sampled
    unless the mesh exports traces (see docs/observability.md)."""
    return f"00-{n + 1:032x}-{n + 1:016x}-{'01' if sampled else '00'}"


async def catch_up(address: str, pki_dir: Path, count: int, pid: int, sampled: bool) -> tuple[float, ...]:
    """(published per second, server CPU ms per published item, delivered per second from the log,
    server CPU ms per delivered item)."""
    items = [client.confirmation(f"c{i}", types_pb2.CHANNEL_ATM, 100 + i) for i in range(count)]
    async with tls.channel_for(address, pki_dir, ROUTER) as router:
        cpu, started = cpu_seconds(pid), time.perf_counter()
        await client.publish(client.stub(router), items, per_message=500,
                             traceparents=[traceparent(i, sampled) for i in range(count)])
        publish_rate = count / (time.perf_counter() - started)
        publish_cpu = (cpu_seconds(pid) - cpu) / count * 1000
    async with tls.channel_for(address, pki_dir, ATM) as atm:
        cpu, started = cpu_seconds(pid), time.perf_counter()
        call = client.stub(atm).Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_BEGINNING))
        received = await client.collect(call, count, timeout=300)
        elapsed = time.perf_counter() - started
        read_cpu = (cpu_seconds(pid) - cpu) / count * 1000
        call.cancel()
    assert [c.payment_id for c in received] == [f"c{i}" for i in range(count)]
    return publish_rate, publish_cpu, count / elapsed, read_cpu


async def live(address: str, pki_dir: Path, rate: int, seconds: float, per_message: int,
               pid: int, sampled: bool) -> tuple[float, ...]:
    """(published per second, delivered per second, p50 ms, p99 ms, server CPU ms per item) at a steady pace
    of `rate` per second, sent every 10 ms in messages of at most per_message confirmations (0: one message
    per tick)."""
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    total = int(rate * seconds)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def requests():
        started = time.perf_counter()
        for n, first in enumerate(range(0, total, per_tick)):
            await asyncio.sleep(max(0.0, started + n * tick - time.perf_counter()))
            batch = [client.confirmation(f"l{i}", types_pb2.CHANNEL_ATM)
                     for i in range(first, min(total, first + per_tick))]
            now = time.perf_counter()
            for item in batch:
                sent_at[item.payment_id] = now
            size = per_message or len(batch)
            for i in range(0, len(batch), size):
                yield pb.PublishConfirmationsRequest(
                    confirmations=batch[i:i + size],
                    traceparents=[traceparent(first + j, sampled) for j in range(i, min(len(batch), i + size))])

    async with tls.channel_for(address, pki_dir, ROUTER) as router, tls.channel_for(address, pki_dir, ATM) as atm:
        call = client.stub(atm).Subscribe(pb.SubscribeRequest(start_position=Start.START_POSITION_NOW))
        await asyncio.sleep(0.5)

        async def receive():
            async for item in client.confirmations_of(call):
                latencies.append(time.perf_counter() - sent_at[item.payment_id])
                if len(latencies) == total:
                    return time.perf_counter()

        receiving = asyncio.ensure_future(receive())
        cpu, started = cpu_seconds(pid), time.perf_counter()
        acked = 0
        async for response in client.stub(router).PublishConfirmations(requests()):
            acked += len(response.acks)
        published = time.perf_counter()
        delivered = await asyncio.wait_for(receiving, 60)
        cpu = cpu_seconds(pid) - cpu
        call.cancel()
    quantiles = statistics.quantiles(latencies, n=100)
    return (acked / (published - started), total / (delivered - started), quantiles[49] * 1000,
            quantiles[98] * 1000, cpu / total * 1000)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catch-up", type=int, default=50_000, help="confirmations in the catch-up run")
    parser.add_argument("--rate", type=int, default=2500, help="live confirmations published per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the live run")
    parser.add_argument("--per-message", type=int, default=0,
                        help="live confirmations per publish message (default: all of a 10 ms tick in one)")
    parser.add_argument("--sampled-traces", action="store_true",
                        help="publish with sampled traceparents, as when the mesh exports traces")
    parser.add_argument("--postgres", action="store_true",
                        help="the log on PostgreSQL (a server of the bench's own, on loopback) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp)
        ensure_dev_pki(home / "pki")
        env: dict[str, str] = {}
        if args.postgres:  # its folder under /tmp itself: as root the server runs as nobody
            folder = Path(tempfile.mkdtemp(prefix="bench-confirmations-pg-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            server = stack.enter_context(LocalPostgres(folder))
            env["PAYMESH_CONFIRMATIONS_DATABASE_URL"] = server.create_database("confirmations")
        process = start_service("confirmations", home, home / "pki", timeout=START_TIMEOUT, **env)
        try:
            pid = process.process.pid
            publish_rate, publish_cpu, catch_up_rate, catch_up_cpu = await catch_up(
                process.address, home / "pki", args.catch_up, pid, args.sampled_traces)
            published, delivered, p50, p99, live_cpu = await live(process.address, home / "pki", args.rate,
                                                                  args.seconds, args.per_message, pid,
                                                                  args.sampled_traces)
        finally:
            process.kill()
    print(f"store: {'PostgreSQL (fsync on, a fenced lease)' if args.postgres else 'SQLite synchronous=FULL'}")
    print(format_table([
        ("measure", "figure", "target"),
        (f"(a) publish {args.catch_up}, 500 a message, no subscriber", f"{publish_rate:,.0f}/s", ""),
        ("(a) server CPU per published confirmation", f"{publish_cpu:.3f} ms", ""),
        (f"(a) catch-up from the log, {args.catch_up} to one subscriber", f"{catch_up_rate:,.0f}/s", ">= 20,000/s"),
        ("(a) server CPU per confirmation caught up", f"{catch_up_cpu:.3f} ms", ""),
        (f"(b) live publish, paced at {args.rate}/s for {args.seconds:g}s"
         f"{f', {args.per_message} a message' if args.per_message else ''}", f"{published:,.0f}/s", ">= 2,000/s"),
        ("(b) live delivered to the subscriber", f"{delivered:,.0f}/s", ">= 2,000/s"),
        ("(b) publish-to-delivery latency p50", f"{p50:.1f} ms", ""),
        ("(b) publish-to-delivery latency p99", f"{p99:.1f} ms", "< 50 ms"),
        ("(b) server CPU per confirmation, published and delivered", f"{live_cpu:.3f} ms", ""),
    ]))


if __name__ == "__main__":
    asyncio.run(main())
