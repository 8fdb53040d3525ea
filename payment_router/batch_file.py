"""The day file agents and stores send, as CSV (UTF-8, comma-separated, no quoting needed):

    H,<batch_id>,<business_date YYYY-MM-DD>
    D,<line_number>,<loan_id>,<currency>,<amount_minor>,<prepayment_mode>,<channel_reference>
    ...
    T,<line_count>,<currency>=<total_minor>;<currency>=<total_minor>

prepayment_mode is REDUCE_TERM, REDUCE_INSTALLMENT or empty (the product's default);
amounts are integer minor units (cents). The trailer's count and per-currency
control totals must match the lines, or the file is refused whole.
"""

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bank.common.v1 import types_pb2
from bank.payments.v1 import payment_service_pb2 as api, payments_pb2

MODES = {"": types_pb2.PREPAYMENT_MODE_UNSPECIFIED, "REDUCE_TERM": types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
         "REDUCE_INSTALLMENT": types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT}
MODE_NAMES = {value: name for name, value in MODES.items()}


class BatchFileError(ValueError):
    """The file is not in the documented format; the message names the line."""


def read_batch_file(path: Path) -> list[api.UploadBatchRequest]:
    """The file as the UploadBatch stream's messages: header, lines, trailer."""
    requests = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            try:
                requests.append(_request_of(row))
            except (ValueError, IndexError, KeyError) as bad:
                raise BatchFileError(f"{path}:{number}: {bad or 'malformed record'}: {','.join(row)[:80]}") from None
    return requests


def _request_of(row: list[str]) -> api.UploadBatchRequest:
    kind = row[0] if row else ""
    if kind == "H":
        return api.UploadBatchRequest(header=api.BatchHeader(batch_id=row[1], business_date=row[2]))
    if kind == "D":
        order = payments_pb2.PaymentOrder(
            loan_id=row[2], amount=types_pb2.Money(currency_code=row[3], amount_minor=int(row[4])),
            prepayment_mode=MODES[row[5]], channel_reference=row[6] if len(row) > 6 else "",
        )
        return api.UploadBatchRequest(line=api.BatchLine(line_number=int(row[1]), payment=order))
    if kind == "T":
        totals = [item.split("=") for item in row[2].split(";") if item]
        return api.UploadBatchRequest(trailer=api.BatchTrailer(
            line_count=int(row[1]),
            control_totals=[types_pb2.Money(currency_code=c, amount_minor=int(a)) for c, a in totals],
        ))
    raise ValueError(f"unknown record type {kind!r} (H, D or T)")


def write_batch_file(path: Path, batch_id: str, business_date: str, orders: list[payments_pb2.PaymentOrder],
                     trailer_override: tuple[int, dict[str, int]] | None = None) -> None:
    """Writes a day file; trailer_override (count, totals) makes a wrong trailer for tests."""
    totals = Counter()
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["H", batch_id, business_date])
        for number, order in enumerate(orders, start=1):
            out.writerow(["D", number, order.loan_id, order.amount.currency_code, order.amount.amount_minor,
                          MODE_NAMES[order.prepayment_mode], order.channel_reference])
            totals[order.amount.currency_code] += order.amount.amount_minor
        count, totals = trailer_override or (len(orders), totals)
        out.writerow(["T", count, ";".join(f"{c}={a}" for c, a in sorted(totals.items()))])


def stream_of(requests: list[api.UploadBatchRequest], progress=None) -> Iterator[api.UploadBatchRequest]:
    for sent, request in enumerate(requests, start=1):
        if progress:
            progress(sent, len(requests))
        yield request
