"""Benchmark of webhook delivery: prints its figures, asserts nothing.

    .venv/bin/python bench/bench_webhooks.py [--rate 2500] [--seconds 4] [--batch 50]
                                             [--many-rate 150] [--many-batch 1]

The confirmation service runs as its own process (real mTLS, SQLite with fsync); the receivers are
aiohttp servers on loopback in another process, each answering after its delay (0, 50 or 200 ms),
one of them failing every other request with a 503. Confirmations are published as the router does
(what a 10 ms tick gathered, as one message) at a steady rate; a gRPC subscriber of the same channel
follows the stream in the same run. For each scenario and endpoint: confirmations received per second
(distinct ones, from the first publish to the last arrival), sustained (those that arrived while publishing,
after its first second, per second) and the lag from the payment's answer (its publish ack: the result is
durable in the log) to the POST received, p50 and p99.

Scenarios: (1) one endpoint 50 ms away, one confirmation a POST; (2) the same, batches of up to
--batch; (3) ten endpoints (four at 0 ms, three at 50 ms, three at 200 ms) at --many-rate each, all
healthy; (4) the same ten, the first one failing half its requests: the healthy nine's rate and lag
beside (3). The bare gRPC echo of the same machine (mTLS unary health checks) comes first.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402
from bench.bench_mesh import echo_ceiling  # noqa: E402

from bank.common.v1 import types_pb2  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2 as pb  # noqa: E402
from confirmations import client  # noqa: E402
from paymesh import tls  # noqa: E402
from paymesh.topology import ROUTER, Identity  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.launch import start_service  # noqa: E402
from paymesh_tools.textui import format_table  # noqa: E402

ATM = Identity("channel", "atm")
MANY_DELAYS = (0.0, 0.0, 0.0, 0.0, 0.05, 0.05, 0.05, 0.2, 0.2, 0.2)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the receivers, in a process of their own (their CPU is not the publisher's) ----

def _receivers(connection, specs: list[tuple[float, bool]]) -> None:
    """One HTTP server per (delay, fails_half); answers its parent's "collect" with what each received."""
    asyncio.run(_serve_receivers(connection, specs))


async def _serve_receivers(connection, specs: list[tuple[float, bool]]) -> None:
    arrivals: list[dict[str, float]] = [{} for _ in specs]
    posts = [0] * len(specs)
    runners = []
    ports = []
    for index, (delay, fails_half) in enumerate(specs):
        async def handle(request: web.Request, index=index, delay=delay, fails_half=fails_half) -> web.Response:
            body = await request.read()
            posts[index] += 1
            if delay:
                await asyncio.sleep(delay)
            if fails_half and posts[index] % 2:
                return web.Response(status=503)
            now = time.time()
            event = json.loads(body)
            events = event["data"]["webhooks"] if event["type"] == "payment.batch" else [event]
            for item in events:
                arrivals[index].setdefault(item["data"]["payment_id"], now)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        runners.append(runner)
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    connection.send(ports)
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, connection.recv)) != "stop":
        if command == "collect":
            connection.send((arrivals, posts))
            arrivals = [{} for _ in specs]
            posts[:] = [0] * len(specs)
    for runner in runners:
        await runner.cleanup()


# ---- the benchmark ----

@dataclass
class Endpoint:
    index: int  # its receiver
    delay: float
    fails_half: bool
    endpoint_id: str = ""


async def scenario(address: str, pki: Path, receivers, ports: list[int], name: str, endpoints: list[Endpoint],
                   rate: int, seconds: float, batch: int, wait: float, pids: dict[str, int]) -> list[tuple]:
    """Publishes rate/s for seconds with the endpoints registered; the table's rows."""
    prefix = name.split()[0]
    per_tick = max(1, round(rate * 0.01))  # what 10 ms gather, at least one (then ticks are longer)
    tick = per_tick / rate
    total = int(rate * seconds)
    answered: dict[str, float] = {}
    async with tls.channel_for(address, pki, ROUTER) as router, tls.channel_for(address, pki, ATM) as atm:
        service = client.stub(atm)
        for endpoint in endpoints:
            created = await service.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(
                request_id=f"{prefix}-{endpoint.index}", url=f"http://127.0.0.1:{ports[endpoint.index]}/hook",
                max_batch_size=batch))
            endpoint.endpoint_id = created.endpoint.endpoint_id
        subscription = service.Subscribe(pb.SubscribeRequest(start_position=pb.StartPosition.START_POSITION_NOW))
        await asyncio.sleep(1.5)  # the dispatcher's lanes start
        subscribed: list[float] = []

        async def follow():
            async for _ in client.confirmations_of(subscription):
                subscribed.append(time.time())
                if len(subscribed) == total:
                    return

        async def requests():
            began = time.perf_counter()
            for n, first in enumerate(range(0, total, per_tick)):
                await asyncio.sleep(max(0.0, began + n * tick - time.perf_counter()))
                yield pb.PublishConfirmationsRequest(confirmations=[
                    client.confirmation(f"{prefix}{i}", types_pb2.CHANNEL_ATM, 100 + i)
                    for i in range(first, min(total, first + per_tick))])

        following = asyncio.ensure_future(follow())
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.time()
        async for response in client.stub(router).PublishConfirmations(requests()):
            now = time.time()
            for ack in response.acks:
                answered[ack.payment_id] = now
        published = time.time()
        await asyncio.wait_for(following, 60)
        subscription.cancel()
        # Until every healthy endpoint has every confirmation (or wait seconds): collected from the receivers.
        arrivals: list[dict[str, float]] = [{} for _ in ports]
        posts = [0] * len(ports)
        deadline = time.time() + wait
        while True:
            await asyncio.sleep(0.5)
            receivers.send("collect")
            got, counted = receivers.recv()
            for index, seen in enumerate(got):
                for payment_id, at in seen.items():
                    arrivals[index].setdefault(payment_id, at)
                posts[index] += counted[index]
            healthy_done = all(len(arrivals[e.index]) >= total for e in endpoints if not e.fails_half)
            everyone_done = all(len(arrivals[e.index]) >= total for e in endpoints)
            if everyone_done or (healthy_done and time.time() > deadline) or time.time() > deadline + 30:
                break
        cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
        for endpoint in endpoints:
            await service.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id))
    webhooks = sum(len(arrivals[e.index]) for e in endpoints)
    rows = [(name, "gRPC subscription", f"{len(subscribed) / (subscribed[-1] - started):,.0f}", "", "", "",
             "CPU ms a webhook: " + ", ".join(f"{n} {c / webhooks * 1000:.3f}" for n, c in cpu.items()))]
    for endpoint in endpoints:
        seen = arrivals[endpoint.index]
        lags = sorted(at - answered[payment_id] for payment_id, at in seen.items() if payment_id in answered)
        received_rate = len(seen) / (max(seen.values()) - started) if seen else 0.0
        # Sustained: what arrived while publishing, after its first second (the window's ramp), per second.
        steady = sum(1 for at in seen.values() if started + 1 <= at <= published) / max(0.1, published - started - 1)
        quantiles = statistics.quantiles(lags, n=100) if len(lags) > 1 else [0.0] * 99
        label = f"{endpoint.delay * 1000:.0f} ms" + (", fails half" if endpoint.fails_half else "")
        rows.append(("", f"#{endpoint.index} {label}: {len(seen)}/{total} in {posts[endpoint.index]} POSTs",
                     f"{received_rate:,.0f}", f"{steady:,.0f}", f"{quantiles[49] * 1000:,.0f}",
                     f"{quantiles[98] * 1000:,.0f}", f"published {total / (published - started):,.0f}/s"))
    return rows


def healthy_summary(name: str, rows: list[tuple]) -> tuple:
    healthy = rows[2:]  # (rows[0] is the subscription's, rows[1] the first endpoint's: the one that may fail)
    rates = [float(row[2].replace(",", "")) for row in healthy]
    steady = [float(row[3].replace(",", "")) for row in healthy]
    p99s = [float(row[5].replace(",", "")) for row in healthy]
    return (name, "the nine after the first: total, worst p99", f"{sum(rates):,.0f}", f"{sum(steady):,.0f}", "",
            f"{max(p99s):,.0f}", "")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2500, help="confirmations a second in scenarios 1 and 2")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each scenario's publishing")
    parser.add_argument("--batch", type=int, default=50, help="max_batch_size of scenario 2's endpoint")
    parser.add_argument("--many-rate", type=int, default=150, help="confirmations a second in scenarios 3 and 4"
                        " (each goes to all ten endpoints)")
    parser.add_argument("--many-batch", type=int, default=1, help="max_batch_size of the ten endpoints")
    parser.add_argument("--only", type=int, nargs="*", default=[1, 2, 3, 4], help="the scenarios to run")
    args = parser.parse_args()
    specs = [(0.05, False), *[(delay, index == 0) for index, delay in enumerate(MANY_DELAYS)],
             *[(delay, False) for delay in MANY_DELAYS[:1]]]
    context = multiprocessing.get_context("spawn")
    receivers, child_end = context.Pipe()
    child = context.Process(target=_receivers, args=(child_end, specs), daemon=True)
    child.start()
    ports = receivers.recv()
    allow = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ensure_dev_pki(home / "pki")
        process = start_service("confirmations", home, home / "pki", PAYMESH_WEBHOOK_ALLOWED_HOSTS=allow,
                                PAYMESH_LOG_LEVEL="WARNING")
        rows: list[tuple] = []
        try:
            pki, address = home / "pki", process.address
            pids = {"service": process.process.pid, "receivers": child.pid or 0, "bench": os.getpid()}
            echo = await echo_ceiling(address, pki, ATM, 2)
            rows.append(("bare gRPC echo (mTLS unary health check)", "", f"{echo:,.0f}", "", "", "", ""))
            if 1 in args.only:
                rows += await scenario(address, pki, receivers, ports, "1 one endpoint 50 ms away, one a POST",
                                       [Endpoint(0, 0.05, False)], args.rate, args.seconds, 1, 10, pids)
            if 2 in args.only:
                rows += await scenario(address, pki, receivers, ports,
                                       f"2 one endpoint 50 ms away, up to {args.batch} a POST",
                                       [Endpoint(0, 0.05, False)], args.rate, args.seconds, args.batch, 10, pids)
            # Receivers 1-10 are the ten with the failing one first; receiver 11 is a healthy 0 ms in its place.
            healthy_ten = [Endpoint(11, 0.0, False), *[Endpoint(1 + i, d, False) for i, d in
                                                       enumerate(MANY_DELAYS) if i]]
            failing_ten = [Endpoint(1, 0.0, True), *healthy_ten[1:]]
            if 3 in args.only:
                ten = await scenario(address, pki, receivers, ports, f"3 ten endpoints healthy, {args.many_rate}/s",
                                     healthy_ten, args.many_rate, args.seconds, args.many_batch, 10, pids)
                rows += ten + [healthy_summary("", ten)]
            if 4 in args.only:
                ten = await scenario(address, pki, receivers, ports, f"4 ten endpoints, #1 fails half, "
                                     f"{args.many_rate}/s", failing_ten, args.many_rate, args.seconds,
                                     args.many_batch, 10, pids)
                rows += ten + [healthy_summary("", ten)]
        finally:
            process.kill()
            receivers.send("stop")
            child.join(5)
    print(format_table([("scenario", "endpoint", "rate /s", "sustained /s", "lag p50 ms", "lag p99 ms", ""), *rows]))


if __name__ == "__main__":
    asyncio.run(main())
