"""`paymesh outbox list|replay`: the router's outbox rows its peers refused.

A row the mainframe bridge or confirmations refused is never forgotten and never
sent again by itself: it waits here for an operator, who fixes the cause and
replays it (one by one, or all). Exit code of `list`: 0 none, 1 some waiting.
"""

import asyncio

import grpc

from bank.payments.v1 import payment_operations_service_pb2 as ops_pb2
from bank.payments.v1 import payment_operations_service_pb2_grpc as ops_grpc
from paymesh import tls
from paymesh.config import Settings, address_of
from paymesh.errors import reason_name
from paymesh_tools.textui import format_table
from paymesh.topology import OPERATOR


async def _list(settings: Settings) -> int:
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, OPERATOR) as channel:
        reply = await ops_grpc.PaymentOperationsServiceStub(channel).ListRefusedDeliveries(
            ops_pb2.ListRefusedDeliveriesRequest(), timeout=30)
    rows = [("TOPIC", "ITEM", "PAYMENT", "REFUSED AT (UTC)", "REASON", "WHY")]
    for d in reply.deliveries:
        rows.append((d.topic, d.item_key, d.payment_id, d.refuse_time.ToDatetime().isoformat(timespec="seconds"),
                     reason_name(d.rejection.reason), d.rejection.message[:80]))
    print(format_table(rows) if reply.deliveries else "no refused outbox rows")
    return 1 if reply.deliveries else 0


async def _replay(settings: Settings, items: list[str], everything: bool) -> int:
    wanted = [ops_pb2.RefusedDelivery(topic=topic, item_key=key)
              for topic, _, key in (item.partition(":") for item in items)]
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, OPERATOR) as channel:
        reply = await ops_grpc.PaymentOperationsServiceStub(channel).ReplayRefusedDeliveries(
            ops_pb2.ReplayRefusedDeliveriesRequest(deliveries=wanted, all=everything), timeout=30)
    print(f"{reply.replayed_count} outbox rows sent again")
    return 0


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the refused rows, oldest first")
    replay = actions.add_parser("replay", help="send refused rows again")
    replay.add_argument("items", nargs="*", metavar="TOPIC:ITEM", help="e.g. posting:PAY-3f2a...")
    replay.add_argument("--all", action="store_true", help="every refused row")


def run(args) -> int:
    settings = Settings.from_env()
    try:
        if args.action == "list":
            return asyncio.run(_list(settings))
        if not args.items and not args.all:
            print("name the rows to replay (TOPIC:ITEM) or use --all")
            return 2
        return asyncio.run(_replay(settings, args.items, args.all))
    except grpc.aio.AioRpcError as error:
        print(f"the router did not answer: {error.code().name}: {error.details()}")
        return 2
