"""What holding things open costs, on real service processes: prints its figures, asserts nothing.

    .venv/bin/python bench/memory_budget.py [--streams 1000] [--subscribers 1000] [--lines 20000]
                                            [--confirmations 100000]

Starts the router and confirmations as their own processes (real mTLS), the ATM's and the agent's
limits raised past what is asked, and reads each one's resident memory (VmRSS, /proc/<pid>/status)
before and after the ATM opens N idle StreamPayments (the router) and N idle subscriptions
(confirmations), and after the agent sends L lines of a day file it does not finish (the router holds
every line until the trailer). A buffered confirmation is measured in this process: M Confirmations
as confirmations holds them in a subscriber's buffer (one protobuf message each, all fields set).
The cost of one is the growth divided by the count.
"""

import argparse
import asyncio
import datetime as dt
import math
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bank.common.v1 import types_pb2  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api  # noqa: E402
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc  # noqa: E402
from bank.confirmations.v1.confirmations_pb2 import Confirmation  # noqa: E402
from bank.loans.v1 import loans_pb2  # noqa: E402
from bank.payments.v1 import payment_service_pb2_grpc as api_grpc  # noqa: E402
from bank.payments.v1 import payments_pb2  # noqa: E402
from payment_router.channel_policy import DEFAULT_POLICY_FILE  # noqa: E402
from paymesh import tls  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_mesh, stop_mesh  # noqa: E402
from paymesh_tools.simulate_day import batch_requests  # noqa: E402
from paymesh_tools.textui import format_table  # noqa: E402
from paymesh.topology import Identity  # noqa: E402

AS_OF = "2026-11-27"
ATM, AGENT = Identity("channel", "atm"), Identity("channel", "agent")
CALLS_PER_CONNECTION = 200  # well under the servers' max_concurrent_streams (1,024, paymesh/tls.py)


def rss_kib(pid: int | str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))


def buffered_confirmation_bytes(count: int) -> float:
    """The growth of this process per Confirmation held, as a subscriber's buffer holds them."""
    before = rss_kib("self")
    held = [Confirmation(
        sequence=n, payment_id=f"pay-{n:024d}", channel=types_pb2.CHANNEL_ATM, idempotency_key=f"atm-key-{n:020d}",
        loan_id=f"CSH-{n:06d}", loan_type=types_pb2.LOAN_TYPE_CASH, status=types_pb2.PAYMENT_STATUS_APPLIED,
        amount=types_pb2.Money(currency_code="PEN", amount_minor=150_000),
        allocation=loans_pb2.Allocation(principal_minor=120_000, interest_minor=25_000, insurance_minor=5_000),
        outstanding_balance=types_pb2.Money(currency_code="PEN", amount_minor=4_500_000),
        business_date=AS_OF, value_date=AS_OF) for n in range(count)]
    for confirmation in held:
        confirmation.result_time.GetCurrentTime()
    grown = (rss_kib("self") - before) * 1024 / count
    del held
    return grown


async def settle(seconds: float = 3.0) -> None:
    """Time for the server to take every call opened (a StreamPayments answers nothing until an order)."""
    await asyncio.sleep(seconds)


async def measure(args, mesh, pki_dir: Path) -> list[tuple[str, ...]]:
    router, confirmations = mesh["payment-router"], mesh["confirmations"]
    rows: list[tuple[str, ...]] = []
    connections = math.ceil(max(args.streams, args.subscribers) / CALLS_PER_CONNECTION)
    to_router = [tls.channel_for(router.address, pki_dir, ATM) for _ in range(connections)]
    to_confirmations = [tls.channel_for(confirmations.address, pki_dir, ATM) for _ in range(connections)]
    try:
        before = rss_kib(router.process.pid)
        streams = [api_grpc.PaymentServiceStub(to_router[n // CALLS_PER_CONNECTION]).StreamPayments(timeout=600)
                   for n in range(args.streams)]
        await settle()
        after = rss_kib(router.process.pid)
        rows.append(("payment-router", f"{args.streams:,} idle StreamPayments", f"{before / 1024:.1f}",
                     f"{after / 1024:.1f}", f"{(after - before) / args.streams:.1f} KiB"))

        before = rss_kib(confirmations.process.pid)
        subscriptions = [conf_grpc.ConfirmationServiceStub(to_confirmations[n // CALLS_PER_CONNECTION]).Subscribe(
            conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_NOW), timeout=600)
            for n in range(args.subscribers)]
        for call in subscriptions:  # each is open: its first heartbeat came
            await call.read()
        after = rss_kib(confirmations.process.pid)
        rows.append(("confirmations", f"{args.subscribers:,} idle subscriptions", f"{before / 1024:.1f}",
                     f"{after / 1024:.1f}", f"{(after - before) / args.subscribers:.1f} KiB"))
        for call in (*streams, *subscriptions):
            call.cancel()
    finally:
        for channel in (*to_router, *to_confirmations):
            await channel.close()

    # A new router process: the memory the streams freed would be reused and hide the upload's cost.
    router = mesh["payment-router"] = router.restart()  # the mesh stops this one at the end
    await settle(1)
    before = rss_kib(router.process.pid)
    async with tls.channel_for(router.address, pki_dir, AGENT) as channel:
        upload = api_grpc.PaymentServiceStub(channel).UploadBatch(timeout=600)
        lines = [payments_pb2.PaymentOrder(idempotency_key=f"held-{n}", loan_id=f"CSH-{n % 3000:06d}",
                                           amount=types_pb2.Money(currency_code="PEN", amount_minor=100 + n % 300))
                 for n in range(args.lines)]
        for request in batch_requests("held-file", AS_OF, lines)[:-1]:  # the trailer never comes
            await upload.write(request)
        await settle()
        after = rss_kib(router.process.pid)
        upload.cancel()
    rows.append(("payment-router", f"1 open UploadBatch holding {args.lines:,} lines", f"{before / 1024:.1f}",
                 f"{after / 1024:.1f}", f"{(after - before) * 1024 / args.lines:,.0f} B a line"))
    return rows


async def main(args) -> None:
    confirmation_cost = buffered_confirmation_bytes(args.confirmations)
    home = Path(tempfile.mkdtemp(prefix="paymesh-memory-"))
    ensure_dev_pki(home / "pki")
    policy = home / "channels.toml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text()
                      .replace("[atm]\n", f"[atm]\nmax_open_streams = {args.streams + 10}\n", 1))
    mesh = start_mesh(home, home / "pki", only=("confirmations", "payment-router"), fixed_ports=False,
                      timeout=START_TIMEOUT, PAYMESH_CHANNEL_POLICY=str(policy),
                      PAYMESH_CONFIRMATIONS_MAX_SUBSCRIPTIONS=str(args.subscribers + 10),
                      PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS="1", PAYMESH_LOG_LEVEL="WARNING",
                      PAYMESH_CLOCK_START=f"{AS_OF}T10:00:00-05:00")
    try:
        await settle(1)
        rows = await measure(args, mesh, home / "pki")
    finally:
        stop_mesh(mesh)
        shutil.rmtree(home, ignore_errors=True)
    print(f"memory budget, {dt.date.today()}: VmRSS of the real processes, MiB")
    print(format_table([("SERVICE", "HOLDING", "BEFORE", "AFTER", "ONE COSTS"), *rows,
                        ("confirmations", f"{args.confirmations:,} Confirmation messages (this process)", "", "",
                         f"{confirmation_cost:,.0f} B")]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=20_000, help="lines of the unfinished day file")
    parser.add_argument("--confirmations", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
