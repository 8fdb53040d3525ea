"""`paymesh close-day --date YYYY-MM-DD`: the operator closes a business day at the ledger.

The bridge moves every router to the next business day, waits for what is in flight
for the day, seals it (what still comes is booked in the next open day as a late
item), waits until the mainframe posted the day, and delivers the end-of-day file.
Closing a closed day answers the same again. Exit code 0 once the file is accepted.
"""

import asyncio
import time

import grpc

from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from paymesh import tls
from paymesh.config import Settings, address_of
from paymesh.errors import error_info, retry_delay
from paymesh.business_calendar import date_argument
from paymesh.topology import OPERATOR

CALL_TIMEOUT = 120.0


async def close_day(settings: Settings, day: str, patience: float = 300.0) -> bridge_pb2.CloseBusinessDayResponse:
    """Closes the day, asking again while postings still wait for the mainframe (at most patience seconds)."""
    request = bridge_pb2.CloseBusinessDayRequest(request_id=f"close-{day}", business_date=day)
    give_up = time.monotonic() + patience
    async with tls.channel_for(address_of("mainframe-bridge"), settings.pki_dir, OPERATOR) as channel:
        stub = bridge_grpc.MainframeBridgeServiceStub(channel)
        while True:
            try:
                return await stub.CloseBusinessDay(request, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                info = error_info(error)  # postings still on their way to the mainframe: ask again
                if info is None or info.reason != "DOWNSTREAM_UNAVAILABLE" or time.monotonic() > give_up:
                    raise
                await asyncio.sleep(retry_delay(error) or 1.0)


def add_arguments(parser) -> None:
    parser.add_argument("--date", required=True, type=date_argument, help="business date, YYYY-MM-DD")


def run(args) -> int:
    try:
        reply = asyncio.run(close_day(Settings.from_env(), args.date))
    except grpc.aio.AioRpcError as error:
        print(f"{args.date} NOT closed: {error.code().name}: {error.details()}")
        return 1
    print(f"end of day {describe(reply)}")
    return 0


def describe(reply: bridge_pb2.CloseBusinessDayResponse) -> str:
    return (f"{reply.business_date}: file {reply.file_name} (sequence {reply.file_sequence}) with "
            f"{reply.record_count} records, hash total {reply.hash_total}, accepted by the mainframe")
