"""Closing a business day: the batch file of every entry the mainframe posted on
the day, written to $PAYMESH_DATA_DIR/eod/ and delivered to the mainframe, which
checks its control totals against the details and against its own ledger.

Once a close begins the day takes no new postings; it finishes when none of the
day's postings still wait for the mainframe. Closing again answers the first result.
"""

import asyncio
import os
import ssl
from pathlib import Path

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from mainframe_bridge import eod_file, queue_store, records
from mainframe_bridge.framing import MAX_FRAME, encode_frame, read_frame
from mainframe_bridge.link import open_link
from paymesh.sqlite import Store

DELIVERY_TIMEOUT = 60.0
RECORDS_PER_FRAME = MAX_FRAME // eod_file.LRECL


class CloseRefused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, reason: int, retry_after: float | None = None):
        super().__init__(message)
        self.code, self.reason, self.retry_after = code, reason, retry_after


async def close_day(store: Store, eod_dir: Path, address: str, context: ssl.SSLContext,
                    business_date: str) -> bridge_pb2.CloseBusinessDayResponse:
    stored, waiting = await store.transaction(queue_store.begin_close, business_date)
    if stored is not None:
        return bridge_pb2.CloseBusinessDayResponse.FromString(stored)
    if waiting:
        raise CloseRefused(grpc.StatusCode.FAILED_PRECONDITION,
                           f"{waiting} postings of {business_date} still wait for the mainframe; the day takes no "
                           "new postings and can be closed once they are posted", errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                           retry_after=1.0)
    frames = await store.run(queue_store.posted_frames, business_date)
    details = [eod_file.Detail(p.posting_id, entry, p.channel, p.loan_type)
               for p in map(records.decode_posting, frames) for entry in p.entries]
    date = records.date_number(business_date)
    data = eod_file.build(date, details)
    name = eod_file.file_name(date)
    await asyncio.to_thread(_write_durably, eod_dir / name, data)
    reply = await _deliver(address, context, data)
    totals = eod_file.control_totals(details)
    response = bridge_pb2.CloseBusinessDayResponse(
        business_date=business_date, file_name=name, record_count=len(details),
        debit_totals=[types_pb2.Money(currency_code=c, amount_minor=d) for c, (d, _) in totals.items()],
        credit_totals=[types_pb2.Money(currency_code=c, amount_minor=k) for c, (_, k) in totals.items()],
        accepted_by_mainframe=reply["ER-RETURN-CODE"] == records.RC_OK,
    )
    if not response.accepted_by_mainframe:
        raise CloseRefused(grpc.StatusCode.ABORTED,
                           f"the mainframe refused {name} with return code {reply['ER-RETURN-CODE']:04d}: "
                           f"{reply['ER-MESSAGE']}", errors_pb2.ERROR_REASON_CONTROL_TOTAL_MISMATCH)
    await store.transaction(queue_store.finish_close, business_date, response.SerializeToString())
    return response


async def _deliver(address: str, context: ssl.SSLContext, data: bytes) -> dict:
    """Sends the file as frames of whole records on a link of its own; the EOD-REPLY."""
    try:
        reader, writer = await open_link(address, context)
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as fault:
        raise _unavailable(fault) from fault
    try:
        step = RECORDS_PER_FRAME * eod_file.LRECL
        for start in range(0, len(data), step):
            writer.write(encode_frame(data[start:start + step]))
            await writer.drain()
        return records.EOD_REPLY.decode(await asyncio.wait_for(read_frame(reader), DELIVERY_TIMEOUT))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as fault:
        raise _unavailable(fault) from fault
    finally:
        writer.close()


def _unavailable(fault: Exception) -> CloseRefused:
    return CloseRefused(grpc.StatusCode.UNAVAILABLE,
                        f"the mainframe did not take the end-of-day file ({type(fault).__name__}); retry",
                        errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after=5.0)


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
