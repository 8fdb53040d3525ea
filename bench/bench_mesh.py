"""The end-to-end benchmark of the local mesh: prints its figures, asserts nothing.

    .venv/bin/python bench/bench_mesh.py [--stream 20000] [--per-message 50] [--batch 10000]
                                         [--online-rate 500] [--priority-rate 200] [--seconds 10]
                                         [--store sqlite|postgres|journal-on-postgres] [--bulkheads]

Starts every service as its own process (real mTLS, SQLite with synchronous=FULL)
in a temporary folder, then measures from the channels' side:
  - the bare gRPC ceiling of this machine: unary health checks over the same mTLS;
  - online unary payments at a fixed offered rate (open loop): achieved rate, p50/p95/p99;
  - the debt inquiry (an ATM asking what a loan owes) at the same offered rate;
  - the channel stream: payments/s until every confirmation reached the channel's subscriber;
  - batch: lines/s for one day file;
  - priority: online at a fixed rate alone, then the same rate while a day file uploads on the
    store channel from a process of its own: online p50/p99 both ways and their ratio, the
    file's lines/s alone and beside online (--bulkheads: the file to the agent-store bulkhead's
    router, a process of its own as on Kubernetes, so only the cores, bridge and confirmations
    are shared);
  - confirmation fan-out: a subscriber reading the log from the beginning;
and the CPU each process spent per payment in each phase (from /proc/<pid>/stat).
"""

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from bank.common.v1 import types_pb2  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc  # noqa: E402
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc  # noqa: E402
from bank.payments.v1 import payments_pb2  # noqa: E402
from paymesh_tools.products import RULES_OF_TYPE  # noqa: E402
from loan_core.portfolio import generate  # noqa: E402
from paymesh_tools.simulate_day import batch_requests  # noqa: E402
from paymesh import tls  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.local_postgres import LocalPostgres  # noqa: E402
from paymesh_tools.textui import format_table  # noqa: E402
from paymesh.topology import OPERATOR, SERVICES, STORE_SERVICES, Identity  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_mesh, start_service, stop_mesh  # noqa: E402

AS_OF = "2026-11-27"
ATM = Identity("channel", "atm")  # the online phases' caller
AGENT_STORE_ROUTER = "payment-router-agent-store"  # --bulkheads: the day file's router, as on Kubernetes
ENV = dict(PAYMESH_PORTFOLIO_SIZE="3000", PAYMESH_PORTFOLIO_SEED="42", PAYMESH_PORTFOLIO_AS_OF=AS_OF,
           PAYMESH_CLOCK_START=f"{AS_OF}T10:00:00-05:00", PAYMESH_LOG_LEVEL="WARNING")


def cpu_seconds(mesh) -> dict[str, float]:
    """CPU seconds used so far by each service process (utime + stime) and by this client."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, service in mesh.items():
        fields = Path(f"/proc/{service.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    used["client"] = time.process_time()
    return used


Result = TypeVar("Result")


async def cpu_per_item(mesh, count: int, phase: Awaitable[Result]) -> tuple[Result, dict[str, float]]:
    """The phase's result, and the CPU milliseconds each process spent per item during it."""
    before = cpu_seconds(mesh)
    result = await phase
    after = cpu_seconds(mesh)
    return result, {name: (after[name] - before[name]) * 1000 / count for name in after}


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] * 1000 if sorted_values else 0.0


async def echo_ceiling(address: str, pki_dir: Path, identity: Identity, seconds: float, concurrency: int = 64
                       ) -> float:
    """The bare gRPC ceiling of this machine: unary health checks over mTLS, calls a second."""
    async with tls.channel_for(address, pki_dir, identity) as ch:
        stub, done = health_pb2_grpc.HealthStub(ch), 0
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                await stub.Check(health_pb2.HealthCheckRequest())
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


class Bench:
    def __init__(self, mesh, pki_dir: Path):
        self.mesh, self.pki = mesh, pki_dir
        self.loans = [t.loan_id for t in generate(RULES_OF_TYPE[types_pb2.LOAN_TYPE_CASH], seed=42, count=3000,
                                                  as_of=__import__("datetime").date.fromisoformat(AS_OF))
                      if t.currency_code == "PEN" and t.installments_paid < t.term_months]
        self.serial = 0
        self.failed: collections.Counter[str] = collections.Counter()  # calls refused or failed, by status
        self.failure_detail: dict[str, str] = {}  # the first failure's message, by status
        self.file_router = "payment-router"  # the router a priority phase's day file goes to

    def order(self, prefix: str) -> payments_pb2.PaymentOrder:
        self.serial += 1
        return payments_pb2.PaymentOrder(
            idempotency_key=f"{prefix}-{self.serial}", loan_id=self.loans[self.serial % len(self.loans)],
            amount=types_pb2.Money(currency_code="PEN", amount_minor=100 + self.serial % 300))

    def channel(self, service: str, identity: Identity):
        return tls.channel_for(self.mesh[service].address, self.pki, identity)

    async def echo_ceiling(self, seconds: float) -> float:
        return await echo_ceiling(self.mesh["core-cash"].address, self.pki, OPERATOR, seconds)

    async def online(self, rate: float, seconds: float, until: asyncio.Future | None = None
                     ) -> tuple[float, list[float]]:
        return await self.paced(rate, seconds, lambda stub: stub.SubmitPayment(
            api.SubmitPaymentRequest(payment=self.order("online")), timeout=10), until)

    async def inquiry(self, rate: float, seconds: float) -> tuple[float, list[float]]:
        """An ATM asking what a loan owes, as it does before it takes the cash."""
        return await self.paced(rate, seconds, lambda stub: stub.GetLoanDebt(
            api.GetLoanDebtRequest(loan_id=self.order("inquiry").loan_id), timeout=10))

    async def echo_paced(self, rate: float, seconds: float) -> float:
        """The bare echo at the online phase's offered rate: its server's CPU ms per call, what grpc's
        Python server costs a unary call with mTLS before any of our code runs (the router's figure
        per online payment is set beside it)."""
        _, cpu = await cpu_per_item(self.mesh, int(rate * seconds), self.paced(
            rate, seconds, lambda stub: stub.Check(health_pb2.HealthCheckRequest(), timeout=10),
            service="core-cash", identity=OPERATOR, stub_type=health_pb2_grpc.HealthStub))
        return cpu["core-cash"]

    async def paced(self, rate: float, seconds: float, call, until: asyncio.Future | None = None,
                    service: str = "payment-router", identity: Identity = ATM,
                    stub_type=api_grpc.PaymentServiceStub) -> tuple[float, list[float]]:
        """call(stub) at `rate` a second for `seconds`, or until `until` is done (open loop: a slow
        answer does not slow the offer); an ATM's calls to the router unless told otherwise."""
        async with self.channel(service, identity) as ch:
            stub, latencies, tasks = stub_type(ch), [], []

            async def one():
                started = time.perf_counter()
                try:
                    await call(stub)
                except grpc.aio.AioRpcError as failed:  # counted and printed, not timed
                    self.failed[failed.code().name] += 1
                    self.failure_detail.setdefault(failed.code().name, failed.details() or "")
                    return
                latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            for n in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                if until is not None and until.done():
                    break
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
            return len(tasks) / (time.perf_counter() - started), sorted(latencies)

    async def stream_end_to_end(self, count: int, per_message: int) -> tuple[float, list[float]]:
        """Agent stream: from the first send until every result is confirmed to the agent's subscriber."""
        orders = [self.order("stream") for _ in range(count)]
        sent_at: dict[str, float] = {}
        confirmed_at: dict[str, float] = {}
        async with self.channel("confirmations", Identity("channel", "agent")) as conf_ch, \
                self.channel("payment-router", Identity("channel", "agent")) as ch:
            subscription = conf_grpc.ConfirmationServiceStub(conf_ch).Subscribe(
                conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_NOW))
            await asyncio.sleep(0.3)  # the subscription is live before the first payment

            async def follow():
                async for event in subscription:
                    for c in event.batch.confirmations:
                        confirmed_at.setdefault(c.idempotency_key, time.perf_counter())
                    if len(confirmed_at) >= count:
                        return

            follower = asyncio.create_task(follow())

            def requests():
                # A switch sends together what arrived together: per_message orders in one message.
                for start in range(0, len(orders), per_message):
                    now = time.perf_counter()
                    for order in orders[start:start + per_message]:
                        sent_at[order.idempotency_key] = now
                    yield api.StreamPaymentsRequest(payments=orders[start:start + per_message])

            started = time.perf_counter()
            async for _ in api_grpc.PaymentServiceStub(ch).StreamPayments(requests(), timeout=300):
                pass
            await asyncio.wait_for(follower, 120)
            elapsed = time.perf_counter() - started
            subscription.cancel()
        return count / elapsed, sorted(confirmed_at[k] - sent_at[k] for k in sent_at)

    async def batch(self, lines: int) -> float:
        requests = batch_requests("bench-file", AS_OF, [self.order("batch") for _ in range(lines)])
        async with self.channel("payment-router", Identity("channel", "store")) as ch:
            started = time.perf_counter()
            reply = await api_grpc.PaymentServiceStub(ch).UploadBatch(iter(requests), timeout=300)
            elapsed = time.perf_counter() - started
        assert reply.summary.applied_count == lines, reply.summary
        return lines / elapsed

    async def file_in_child(self, lines: int, name: str) -> tuple[asyncio.subprocess.Process, asyncio.Future]:
        """A store's day file uploaded by a process of its own (this one's CPU stays the online
        client's); returns once it is ready to send, with a future of its lines/s."""
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--upload-file", self.mesh[self.file_router].address, str(self.pki), name,
            str(lines), str(self.serial), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert child.stdout is not None and child.stdin is not None
        assert (await child.stdout.readline()).strip() == b"ready"
        self.serial += lines

        async def rate() -> float:
            assert child.stdout is not None
            return float((await child.stdout.readline()).decode())

        return child, asyncio.ensure_future(rate())

    async def priority(self, rate: float, seconds: float, lines: int) -> dict[str, tuple]:
        """Online at `rate` alone, the file alone, then both: {"alone": (p50, p99, lines/s), "together": ...}."""
        _, online_alone = await self.online(rate, seconds)
        child, file_alone = await self.file_in_child(lines, "priority-alone")
        child.stdin.write(b"go\n")  # type: ignore[union-attr]
        alone_rate = await file_alone
        await child.wait()
        child, file_beside = await self.file_in_child(lines, "priority-together")
        child.stdin.write(b"go\n")  # type: ignore[union-attr]
        # Online for as long as the file uploads (at most 60 s): every call is made beside it.
        _, online_beside = await self.online(rate, 60, until=file_beside)
        beside_rate = await file_beside
        await child.wait()
        return {"alone": (percentile(online_alone, .5), percentile(online_alone, .99), alone_rate, len(online_alone)),
                "together": (percentile(online_beside, .5), percentile(online_beside, .99), beside_rate,
                             len(online_beside))}

    async def fan_out(self, channel: str) -> tuple[float, int]:
        async with self.channel("confirmations", Identity("channel", channel)) as ch:
            call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
                conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
            received, started = 0, time.perf_counter()
            async for event in call:
                if event.HasField("heartbeat"):
                    break
                received += len(event.batch.confirmations)
            elapsed = time.perf_counter() - started
            call.cancel()
        return received / elapsed, received


async def main(args) -> None:
    home = Path(tempfile.mkdtemp(prefix="paymesh-bench-"))
    ensure_dev_pki(home / "pki")
    with contextlib.ExitStack() as stack:
        database = {}
        if args.store != "sqlite":  # a server of the bench's own, on loopback (its folder under /tmp)
            server = stack.enter_context(LocalPostgres(Path(tempfile.mkdtemp(prefix="paymesh-bench-pg-"))))
            on_postgres = STORE_SERVICES if args.store == "postgres" else ("payment-router",)
            # Each its own database, as in prod: the journal, each core, the bridge's queue, the confirmation log.
            database = {f"{SERVICES[name].env_prefix}_DATABASE_URL": server.create_database(name.replace("-", "_"))
                        for name in on_postgres}
            print(f"on PostgreSQL (a local server; its CPU is not in the table below): {', '.join(on_postgres)}")
        await measure(args, home, database)


async def measure(args, home: Path, database: dict[str, str]) -> None:
    # The launcher's own parameters named, so that **ENV (environment variables only) cannot be taken for them.
    mesh = start_mesh(home, home / "pki", only=None, fixed_ports=False, timeout=START_TIMEOUT,
                      PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS="0.5", **ENV, **database)
    try:
        bench = Bench(mesh, home / "pki")
        if args.bulkheads:  # the agent and store group's router, a process (its own journal) on the same peers
            peers = {f"{SERVICES[name].env_prefix}_ADDR": service.address for name, service in mesh.items()}
            mesh[AGENT_STORE_ROUTER] = start_service("payment-router", home / "agent-store", home / "pki",
                                                     START_TIMEOUT, **ENV, **peers, **database,
                                                     PAYMESH_ROUTER_BULKHEAD="agent-store")
            bench.file_router = AGENT_STORE_ROUTER
        await asyncio.sleep(1)  # the router's streams to its peers are up
        echo = await bench.echo_ceiling(3)
        if args.priority_only:
            await bench.online(args.priority_rate, args.warm_up)
            print(f"bare gRPC echo {echo:,.0f}/s")
            print_priority(args, await bench.priority(args.priority_rate, args.seconds, args.batch))
            print_failed(bench)
            return
        # Steady state, as a bank's mesh is at nine in the morning: the loans touched are in
        # the cores' caches and every connection is warm. Not counted.
        await bench.online(args.online_rate, args.warm_up)
        (online_rate, online), online_cpu = await cpu_per_item(
            mesh, int(args.online_rate * args.seconds), bench.online(args.online_rate, args.seconds))
        echo_cpu = await bench.echo_paced(args.online_rate, min(args.seconds, 5))
        inquiry_rate, inquiry = await bench.inquiry(args.online_rate, args.seconds)
        (stream_rate, stream), stream_cpu = await cpu_per_item(
            mesh, args.stream, bench.stream_end_to_end(args.stream, args.per_message))
        batch_rate, batch_cpu = await cpu_per_item(mesh, args.batch, bench.batch(args.batch))
        fan_rate, fanned = await bench.fan_out("agent")
        priority = await bench.priority(args.priority_rate, args.seconds, args.batch)
    finally:
        stop_mesh(mesh)
        shutil.rmtree(home, ignore_errors=True)
    rows: list[tuple[str, ...]] = [("MEASURE", "RATE /s", "p50 ms", "p95 ms", "p99 ms", "RATIO TO ECHO")]
    rows.append(("bare gRPC echo (mTLS unary health check)", f"{echo:,.0f}", "", "", "", "1.00"))
    for name, rate, lat in ((f"online unary, offered {args.online_rate}/s", online_rate, online),
                            (f"debt inquiry, offered {args.online_rate}/s", inquiry_rate, inquiry),
                            (f"stream ({args.per_message} per message), sent to confirmed", stream_rate, stream)):
        rows.append((name, f"{rate:,.0f}", f"{percentile(lat, .5):.1f}", f"{percentile(lat, .95):.1f}",
                     f"{percentile(lat, .99):.1f}", f"{rate / echo:.2f}"))
    rows.append((f"batch, {args.batch:,} lines", f"{batch_rate:,.0f}", "", "", "", f"{batch_rate / echo:.2f}"))
    rows.append((f"confirmation fan-out from the log ({fanned:,})", f"{fan_rate:,.0f}", "", "", "",
                 f"{fan_rate / echo:.2f}"))
    print(format_table(rows))
    print(f"\nCPU ms per payment, by process ({os.cpu_count()} cores; a core is 1,000 ms per second)")
    names = ("payment-router", "cores", "mainframe-bridge", "mainframe-emulator", "confirmations", "client")
    rows = [("PHASE", *names, "MESH TOTAL")]
    for phase, cpu in (("online", online_cpu), ("stream", stream_cpu), ("batch", batch_cpu)):
        cpu["cores"] = sum(v for k, v in cpu.items() if k.startswith("core-"))
        mesh_total = sum(cpu[n] for n in names if n != "client")
        rows.append((phase, *(f"{cpu[n]:.3f}" for n in names), f"{mesh_total:.3f}"))
    print(format_table(rows))
    print(f"the bare echo's server at the same {args.online_rate:.0f}/s offered: {echo_cpu:.3f} ms a call; the router's"
          f" online payment costs {online_cpu['payment-router'] / echo_cpu:.1f} of those")
    print_priority(args, priority)
    print_failed(bench)


def print_failed(bench: "Bench") -> None:
    """Calls that failed are not in the latencies above: say how many, by status."""
    if bench.failed:
        print("\nonline calls failed (not in the latencies): "
              + ", ".join(f"{count:,} {code} (the first: {bench.failure_detail[code][:120]!r})"
                          for code, count in bench.failed.most_common()))


def print_priority(args, priority: dict[str, tuple]) -> None:
    to = "to the agent-store bulkhead's router (online to the mesh's)" if args.bulkheads else "to the same router"
    print(f"\nonline at {args.priority_rate:.0f}/s alone and while a {args.batch:,}-line day file uploads "
          f"(store channel, from a process of its own, {to})")
    (a50, a99, a_rate, a_n), (b50, b99, b_rate, b_n) = priority["alone"], priority["together"]
    print(format_table([
        ("", "online p50 ms", "online p99 ms", "online calls", "file lines/s"),
        ("alone", f"{a50:.1f}", f"{a99:.1f}", f"{a_n:,}", f"{a_rate:,.0f}"),
        ("together", f"{b50:.1f}", f"{b99:.1f}", f"{b_n:,}", f"{b_rate:,.0f}"),
        ("together / alone", f"{b50 / a50:.2f}", f"{b99 / a99:.2f}", "", f"{b_rate / a_rate:.2f}"),
    ]))


async def upload_file(router: str, pki_dir: str, name: str, lines: int, first_serial: int) -> None:
    """The child of Bench.file_in_child: builds the file, says "ready", uploads on "go", prints lines/s."""
    bench = Bench({"payment-router": types.SimpleNamespace(address=router)}, Path(pki_dir))
    bench.serial = first_serial
    requests = batch_requests(name, AS_OF, [bench.order(name) for _ in range(lines)])
    async with bench.channel("payment-router", Identity("channel", "store")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        await ch.channel_ready()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started = time.perf_counter()
        reply = await stub.UploadBatch(iter(requests), timeout=300)
        elapsed = time.perf_counter() - started
    assert reply.summary.applied_count == lines, reply.summary
    print(lines / elapsed, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--upload-file":
        router, pki_dir, name, lines, serial = sys.argv[2:]
        asyncio.run(upload_file(router, pki_dir, name, int(lines), int(serial)))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=50, help="stream orders per message")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--online-rate", type=float, default=500)
    parser.add_argument("--priority-rate", type=float, default=200, help="online rate beside the day file")
    parser.add_argument("--priority-only", action="store_true", help="only the echo and the priority phase")
    parser.add_argument("--bulkheads", action="store_true",
                        help="the priority phase's file to a router of its own (the agent-store bulkhead, as on "
                             "Kubernetes), online to the mesh's")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warm-up", type=float, default=2, help="seconds of online traffic before measuring")
    parser.add_argument("--store", choices=("sqlite", "postgres", "journal-on-postgres"), default="sqlite",
                        help="every store in its SQLite file; every store in a database of its own on a local "
                             "PostgreSQL server; or only the router's journal there")
    asyncio.run(main(parser.parse_args()))
