"""`paymesh batch upload FILE --channel agent`: sends a day file (see batch_file.py)
to the router as that channel, with a progress bar, and prints the summary.

The file is read and checked whole before anything is sent. Whatever goes wrong is
one line on stderr and its own exit code (EXIT_CODES, documented in
docs/payment-router.md#batch-files), never a traceback.
"""

import asyncio
import sys
from pathlib import Path

import grpc

from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc
from paymesh_tools import batch_file
from paymesh_tools.batch_file import BatchFileError, read_batch_file, stream_of
from paymesh import tls
from paymesh.config import Settings, address_of
from paymesh_tools.textui import format_money, format_table
from paymesh.topology import Identity

UPLOADED = 0  # the summary on stdout; lines the cores rejected are listed there and do not change it
USAGE = 2  # argparse's own code for a wrong command line
EXIT_CODES = {
    batch_file.FileNotFound: 3,
    batch_file.IsDirectory: 4,
    batch_file.NotReadable: 5,
    batch_file.NotUtf8: 6,
    batch_file.TooLong: 7,
    batch_file.MalformedRecord: 8,
    batch_file.BadStructure: 9,
}
REFUSED = 10  # a gRPC error from the router (or on the way to it): "batch refused: STATUS: message"
NO_CREDENTIALS = 11  # the channel's certificate or key is not in PAYMESH_PKI_DIR
INTERRUPTED = 130  # Ctrl-C

_progress_shown = False


def _progress(sent: int, total: int) -> None:
    global _progress_shown
    if sent % 500 and sent != total:
        return
    _progress_shown = True
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


def _error(message: str) -> None:
    """One line on stderr, below the progress bar if there is one."""
    message = " ".join(str(message).split())  # one line, whatever a peer's message holds
    print(("\n" if _progress_shown else "") + message, file=sys.stderr, flush=True)


async def every_result(stub, reply: api.UploadBatchResponse, timeout: float = 60) -> list[api.BatchLineResult]:
    """Every line's result of an upload: the answer's first page, then ListBatchResults for the rest."""
    results, token = list(reply.results), reply.next_page_token
    while token:
        page = await stub.ListBatchResults(api.ListBatchResultsRequest(
            batch_id=reply.summary.batch_id, page_size=5_000, page_token=token), timeout=timeout)
        results.extend(page.results)
        token = page.next_page_token
    return results


async def upload(path: Path, channel: str, settings: Settings) -> int:
    requests = read_batch_file(path)
    try:
        ch = tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", channel))
    except (OSError, ValueError) as error:
        _error(f"cannot upload: {error}")
        return NO_CREDENTIALS
    async with ch:
        stub = payment_service_pb2_grpc.PaymentServiceStub(ch)
        try:
            reply = await stub.UploadBatch(stream_of(requests, _progress), timeout=600)
            results = await every_result(stub, reply)
        except grpc.aio.AioRpcError as error:
            _error(f"batch refused: {error.code().name}: {error.details()}")
            return REFUSED
    print(("\n" if _progress_shown else "") + summary_table(reply.summary))
    for result in results:
        if result.payment.rejection.reason:
            print(f"line {result.line_number}: rejected: {result.payment.rejection.message}")
    return UPLOADED


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    send = actions.add_parser(
        "upload", help="upload a day file to the router",
        epilog="exit codes: 0 uploaded, 2 usage, 3 no such file, 4 a directory, 5 not readable, 6 not UTF-8, "
               "7 a line or the file too long, 8 a malformed record, 9 a header or trailer missing or misplaced, "
               "10 refused by the router (STATUS: message), 11 no certificate in PAYMESH_PKI_DIR, 130 interrupted")
    send.add_argument("file", type=Path)
    send.add_argument("--channel", choices=["agent", "store"], required=True,
                      help="the channel whose certificate signs the upload")


def run(args) -> int:
    try:
        return asyncio.run(upload(args.file, args.channel, Settings.from_env()))
    except BatchFileError as bad:
        _error(f"cannot upload: {bad}")
        return EXIT_CODES[type(bad)]
    except KeyboardInterrupt:
        _error("interrupted: if anything was sent, upload the same file again (no line is applied twice)")
        return INTERRUPTED
