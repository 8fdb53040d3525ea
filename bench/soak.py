"""The soak benchmark: minutes of mixed load on a local mesh, watching every service's memory and
open files. Prints its figures, asserts nothing.

    .venv/bin/python bench/soak.py [--minutes 10] [--sample-seconds 10] [--warm-up-minutes 2]
                                   [--online-rate 40] [--stream-rate 20] [--batch-lines 200]

Starts every service as its own process (real mTLS, SQLite) and a webhook receiver on loopback, then
for the whole run at once:
  - online: an ATM pays by SubmitPayment at --online-rate a second (open loop, at most 64 in flight);
  - stream: the agent pays on StreamPayments at --stream-rate a second, on a new stream each minute;
  - batch: the store uploads a day file of --batch-lines lines every 15 s;
  - subscribers: the ATM, the agent and the store each follow their confirmations on one long
    subscription, and a short one of the ATM opens and closes every 2 s;
  - webhooks: the ATM's confirmations are also POSTed to the receiver;
and every --sample-seconds reads each service's VmRSS (/proc/<pid>/status) and open file descriptors
(/proc/<pid>/fd). It prints a line per sample, then each service's figures at the end of the warm-up,
at the end and at their highest, and the growth after the warm-up (the goal: under 10 %).
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bank.confirmations.v1 import confirmation_service_pb2 as conf_api  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc  # noqa: E402
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc  # noqa: E402
from bench.bench_mesh import AS_OF, ENV, Bench  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_mesh, stop_mesh  # noqa: E402
from paymesh_tools.simulate_day import batch_requests  # noqa: E402
from paymesh_tools.textui import format_table  # noqa: E402
from paymesh.topology import Identity  # noqa: E402

ATM, AGENT, STORE = (Identity("channel", name) for name in ("atm", "agent", "store"))
ONLINE_IN_FLIGHT = 64


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak(Bench):
    """The load, each kind a loop until the deadline; what each did and what went wrong, counted."""

    def __init__(self, mesh, pki_dir: Path, args, deadline: float):
        super().__init__(mesh, pki_dir)
        self.args, self.deadline = args, deadline
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()  # "kind: STATUS"

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def failure(self, kind: str, error: grpc.aio.AioRpcError) -> None:
        self.failed[f"{kind}: {error.code().name}"] += 1

    async def online(self) -> None:  # type: ignore[override]  # a loop of its own, not Bench's measure
        async with self.channel("payment-router", ATM) as ch:
            stub, window = api_grpc.PaymentServiceStub(ch), asyncio.Semaphore(ONLINE_IN_FLIGHT)

            async def pay() -> None:
                try:
                    await stub.SubmitPayment(api.SubmitPaymentRequest(payment=self.order("soak-online")), timeout=10)
                    self.done["online payments"] += 1
                except grpc.aio.AioRpcError as error:
                    self.failure("online", error)
                finally:
                    window.release()

            tasks, started, n = set(), time.monotonic(), 0
            while self.running():
                n += 1
                await asyncio.sleep(max(0.0, started + n / self.args.online_rate - time.monotonic()))
                if window.locked():
                    self.done["online offers skipped (64 in flight)"] += 1
                    continue
                await window.acquire()
                task = asyncio.create_task(pay())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

    async def stream(self) -> None:
        async with self.channel("payment-router", AGENT) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            while self.running():
                call = stub.StreamPayments(timeout=120)
                self.done["streams opened"] += 1
                answered = asyncio.create_task(self._count_answers(call))
                ends = min(self.deadline, time.monotonic() + 60)
                try:
                    while time.monotonic() < ends:
                        await call.write(api.StreamPaymentsRequest(payment=self.order("soak-stream")))
                        await asyncio.sleep(1 / self.args.stream_rate)
                    await call.done_writing()
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    pass  # the reader counts how it ended
                await answered

    async def _count_answers(self, call) -> None:
        try:
            async for _ in call:
                self.done["stream payments"] += 1
        except grpc.aio.AioRpcError as error:
            self.failure("stream", error)

    async def batch(self) -> None:  # type: ignore[override]
        async with self.channel("payment-router", STORE) as ch:
            stub, files = api_grpc.PaymentServiceStub(ch), 0
            while self.running():
                files += 1
                lines = [self.order("soak-batch") for _ in range(self.args.batch_lines)]
                try:
                    reply = await stub.UploadBatch(iter(batch_requests(f"soak-{files}", AS_OF, lines)), timeout=120)
                    self.done["batch lines applied"] += reply.summary.applied_count
                except grpc.aio.AioRpcError as error:
                    self.failure("batch", error)
                await asyncio.sleep(max(0.0, min(15.0, self.deadline - time.monotonic())))

    async def follow(self, identity: Identity) -> None:
        async with self.channel("confirmations", identity) as ch:
            call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
                conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_NOW))
            try:
                async with asyncio.timeout(max(0.0, self.deadline - time.monotonic())):
                    async for event in call:
                        self.done[f"confirmations to the {identity.name}"] += len(event.batch.confirmations)
            except TimeoutError:
                pass
            except grpc.aio.AioRpcError as error:
                self.failure(f"subscription of the {identity.name}", error)
            call.cancel()

    async def short_subscriptions(self) -> None:
        async with self.channel("confirmations", ATM) as ch:
            stub = conf_grpc.ConfirmationServiceStub(ch)
            while self.running():
                call = stub.Subscribe(conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_NOW))
                try:
                    await call.read()
                    self.done["short subscriptions"] += 1
                except grpc.aio.AioRpcError as error:
                    self.failure("short subscription", error)
                call.cancel()
                await asyncio.sleep(2)

    async def webhook_endpoint(self, url: str) -> None:
        async with self.channel("confirmations", ATM) as ch:
            await conf_grpc.ConfirmationServiceStub(ch).CreateWebhookEndpoint(
                conf_api.CreateWebhookEndpointRequest(request_id="soak", url=url), timeout=10)


async def webhook_receiver(delivered: Counter) -> tuple[web.AppRunner, str]:
    async def receive(request: web.Request) -> web.Response:
        await request.read()
        delivered["webhook deliveries"] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    return runner, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"


async def sample(mesh, every: float, deadline: float, samples: list) -> None:
    started = time.monotonic()
    names = list(mesh)
    print("  ".join(["  T s", *(f"{n} MiB/fds" for n in names)]), flush=True)
    while True:
        taken = {name: (rss_mib(s.process.pid), open_fds(s.process.pid)) for name, s in mesh.items()}
        samples.append((time.monotonic() - started, taken))
        print("  ".join([f"{samples[-1][0]:5.0f}", *(f"{taken[n][0]:.1f}/{taken[n][1]}".rjust(len(n) + 8)
                                                   for n in names)]), flush=True)
        if time.monotonic() + every > deadline:
            return
        await asyncio.sleep(every)


def summary(samples: list, warm_up: float) -> str:
    after = [s for s in samples if s[0] >= warm_up] or samples[-1:]
    first, last = after[0][1], after[-1][1]
    rows: list[tuple[str, ...]] = [("SERVICE", f"RSS MiB at {after[0][0]:.0f} s", "AT END", "HIGHEST", "GROWTH",
                                    "FDS THEN", "AT END", "HIGHEST", "GROWTH")]
    for name in first:
        rss = [s[1][name][0] for s in after]
        fds = [s[1][name][1] for s in after]
        rows.append((name, f"{first[name][0]:.1f}", f"{last[name][0]:.1f}", f"{max(rss):.1f}",
                     f"{(last[name][0] - first[name][0]) / first[name][0]:+.1%}",
                     str(first[name][1]), str(last[name][1]), str(max(fds)),
                     f"{(last[name][1] - first[name][1]) / first[name][1]:+.1%}"))
    return format_table(rows)


async def main(args) -> None:
    home = Path(tempfile.mkdtemp(prefix="paymesh-soak-"))
    ensure_dev_pki(home / "pki")
    delivered: Counter[str] = Counter()
    runner, hook_url = await webhook_receiver(delivered)
    origin = hook_url.rsplit("/", 1)[0]
    mesh = start_mesh(home, home / "pki", only=None, fixed_ports=False, timeout=START_TIMEOUT,
                      PAYMESH_WEBHOOK_ALLOWED_HOSTS=origin, PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS="1", **ENV)
    samples: list = []
    try:
        await asyncio.sleep(1)  # the router's streams to its peers are up
        deadline = time.monotonic() + args.minutes * 60
        soak = Soak(mesh, home / "pki", args, deadline)
        await soak.webhook_endpoint(hook_url)
        print(f"soak: {args.minutes:g} min of mixed load, a sample every {args.sample_seconds:g} s", flush=True)
        await asyncio.gather(soak.online(), soak.stream(), soak.batch(), soak.short_subscriptions(),
                             *(soak.follow(identity) for identity in (ATM, AGENT, STORE)),
                             sample(mesh, args.sample_seconds, deadline, samples))
        await asyncio.sleep(2)  # the last webhooks
    finally:
        stop_mesh(mesh)
        await runner.cleanup()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\nafter the warm-up ({args.warm_up_minutes:g} min); the goal: growth under 10 %")
    print(summary(samples, args.warm_up_minutes * 60))
    print("\nwhat the load did: " + ", ".join(f"{k} {v:,}" for k, v in sorted((soak.done + delivered).items())))
    print("failed calls: " + (", ".join(f"{k} {v:,}" for k, v in sorted(soak.failed.items())) or "none"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--warm-up-minutes", type=float, default=2)
    parser.add_argument("--online-rate", type=float, default=40, help="online payments a second")
    parser.add_argument("--stream-rate", type=float, default=20, help="stream payments a second")
    parser.add_argument("--batch-lines", type=int, default=200, help="lines of each day file (one every 15 s)")
    asyncio.run(main(parser.parse_args()))
