"""`paymesh batch upload FILE --channel agent`: sends a day file (see batch_file.py)
to the router as that channel, with a progress bar, and prints the summary."""

import asyncio
import sys
from pathlib import Path

import grpc

from bank.payments.v1 import payment_service_pb2_grpc
from payment_router.batch_file import BatchFileError, read_batch_file, stream_of
from paymesh import tls
from paymesh.config import Settings, address_of
from paymesh.textui import format_money, format_table
from paymesh.topology import Identity


def _progress(sent: int, total: int) -> None:
    if sent % 500 and sent != total:
        return
    filled = 30 * sent // total
    print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {sent}/{total} records sent", end="", file=sys.stderr, flush=True)


def summary_table(summary) -> str:
    def totals(money):
        return ", ".join(format_money(m.amount_minor, m.currency_code) for m in money) or "-"

    return format_table([
        ("BATCH", "LINES", "APPLIED", "REJECTED", "ALREADY APPLIED", "APPLIED TOTAL", "REJECTED TOTAL"),
        (summary.batch_id, summary.line_count, summary.applied_count, summary.rejected_count,
         summary.replayed_count, totals(summary.applied_totals), totals(summary.rejected_totals)),
    ])


async def upload(path: Path, channel: str, settings: Settings) -> int:
    requests = read_batch_file(path)
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", channel)) as ch:
        stub = payment_service_pb2_grpc.PaymentServiceStub(ch)
        try:
            reply = await stub.UploadBatch(stream_of(requests, _progress), timeout=600)
        except grpc.aio.AioRpcError as error:
            print(f"\nbatch refused: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print("\n" + summary_table(reply.summary))
    for result in reply.results:
        if result.payment.rejection.reason:
            print(f"line {result.line_number}: rejected: {result.payment.rejection.message}")
    return 0


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    send = actions.add_parser("upload", help="upload a day file to the router")
    send.add_argument("file", type=Path)
    send.add_argument("--channel", choices=["agent", "store"], required=True,
                      help="the channel whose certificate signs the upload")


def run(args) -> int:
    try:
        return asyncio.run(upload(args.file, args.channel, Settings.from_env()))
    except (BatchFileError, FileNotFoundError) as bad:
        print(f"cannot upload: {bad}", file=sys.stderr)
        return 2
