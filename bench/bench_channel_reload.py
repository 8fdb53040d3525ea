"""What following renewed certificate files costs a client: prints its figures, asserts nothing.

    .venv/bin/python bench/bench_channel_reload.py [--calls 3000] [--rounds 5]

Starts core-cash as a real process (mTLS) on a temporary dev PKI and times, in turn, unary health
checks on a plain mTLS channel (the bare gRPC echo) and on the ReloadingChannel every service and
tool now uses (tls.channel_for), round after round (the medians), then the bare cost of the check
it makes on each call (is there a newer certificate? at most one stat a second).
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from paymesh import pki, tls  # noqa: E402
from paymesh.topology import PROBE  # noqa: E402
from paymesh_tools import dev_pki  # noqa: E402
from paymesh_tools.launch import start_service  # noqa: E402


async def checks_per_second(channel, calls: int) -> float:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()
    for _ in range(50):  # warm: the connection, the handshake
        await stub.Check(request, timeout=5)  # type: ignore[attr-defined]
    started = time.perf_counter()
    for _ in range(calls // 20):  # 20 in flight
        await asyncio.gather(*(stub.Check(request, timeout=5) for _ in range(20)))  # type: ignore[attr-defined]
    return calls / (time.perf_counter() - started)


async def measure(address: str, pki_dir: Path, calls: int, rounds: int) -> None:
    echoes, reloadings = [], []
    for _ in range(rounds):  # in turn, so a slower moment of the machine falls on both
        async with tls.secure_channel(address, pki.load(pki_dir, PROBE)) as plain:
            echoes.append(await checks_per_second(plain, calls))
        async with tls.channel_for(address, pki_dir, PROBE) as following:
            reloadings.append(await checks_per_second(following, calls))
    echo, reloading = statistics.median(echoes), statistics.median(reloadings)
    async with tls.channel_for(address, pki_dir, PROBE) as following:
        started, n = time.perf_counter(), 100_000
        for _ in range(n):
            following.current()  # type: ignore[attr-defined]
        check_us = (time.perf_counter() - started) / n * 1e6
    print(f"{'MEASURE (median of ' + str(rounds) + ' rounds each)':<52} {'RATE /s':>9}  RATIO TO ECHO")
    print(f"{'bare gRPC echo (mTLS unary health check)':<52} {echo:>9,.0f}  1.00")
    print(f"{'the same on a ReloadingChannel (tls.channel_for)':<52} {reloading:>9,.0f}  {reloading / echo:.2f}")
    print(f"the per-call check for renewed files: {check_us:.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="paymesh-bench-reload-"))
    pki_dir = home / "pki"
    dev_pki.ensure_dev_pki(pki_dir)
    core = start_service("core-cash", home, pki_dir, PAYMESH_PORTFOLIO_SIZE="10")
    try:
        asyncio.run(measure(core.address, pki_dir, args.calls, args.rounds))
    finally:
        core.terminate()


if __name__ == "__main__":
    main()
