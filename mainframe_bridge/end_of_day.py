"""Closing a business day: the batch file of every entry the mainframe posted on
the day, written to $PAYMESH_DATA_DIR/eod/ and delivered to the mainframe, which
checks its control totals against the details and against its own ledger.

A close never refuses or drops a posting (queue_store says how the day moves from
CLOSING to SEALED to CLOSED); it finishes when none of the day's postings still wait
for the mainframe. Closing again answers the first result.
A close retried after the mainframe did not answer sends the file already written,
byte for byte: the mainframe answers the same file as the first time, and refuses
another one for a day it closed. The file's creation time and number are kept in the
store when it is first built, so a process that did not write it (the standby that
took the bridge's lease over, on PostgreSQL) builds the same bytes.
"""

import asyncio
import logging
import os
import ssl
import time
from datetime import datetime
from pathlib import Path

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from mainframe_bridge import eod_file, queue_store, records
from mainframe_bridge.framing import MAX_FRAME, encode_frame, read_frame
from mainframe_bridge.link import open_link
from mainframe_bridge.queue_store import QueueStore
from paymesh.business_calendar import bank_calendar
from paymesh.errors import Refused

DELIVERY_TIMEOUT = 60.0
# The routers ask the bridge for the day's state every payment_router.booking.POLL_SECONDS (0.25 s):
# after this long every replica books new payments in the next day.
ROUTERS_SWITCH_SECONDS = 1.0
QUIET_SECONDS = 0.5  # no posting of the day for this long: nothing of it is in flight any more
DRAIN_SECONDS = 15.0  # the longest a close waits for the day's postings in flight before it seals the day
log = logging.getLogger(__name__)
RECORDS_PER_FRAME = MAX_FRAME // eod_file.LRECL


async def close_day(store: QueueStore, eod_dir: Path, address: str, context: ssl.SSLContext,
                    business_date: str, timeout: float = 60.0) -> bridge_pb2.CloseBusinessDayResponse:
    """CLOSING: the routers move new payments to the next day, what is in flight for the day
    still lands in it; SEALED: what still comes is booked in the next open day; then, once the
    mainframe posted the day's postings, the file; CLOSED once the mainframe accepts it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state, stored, closing_since = await store.transaction(queue_store.begin_close, business_date)
    if stored is not None:
        return bridge_pb2.CloseBusinessDayResponse.FromString(stored)
    if state == queue_store.CLOSING:
        await _drain(store, business_date, closing_since, deadline)
        await store.transaction(queue_store.seal, business_date)
        log.info("business day sealed: later postings of it are booked in the next open day",
                 extra={"business_date": business_date})
    while (waiting := await store.run(queue_store.waiting_for_mainframe, business_date)) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    if waiting:
        # FAILED_PRECONDITION, not UNAVAILABLE: the bridge is up; the day is what is not ready.
        raise Refused(errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                      f"{waiting} postings of {business_date} still wait for the mainframe; the day takes no "
                      "new postings and closes once they are posted: ask again",
                      code=grpc.StatusCode.FAILED_PRECONDITION, retry_after=1.0)
    response = await send_day_file(store, eod_dir, address, context, business_date)
    await store.transaction(queue_store.finish_close, business_date, response.SerializeToString())
    return response


async def _drain(store: QueueStore, business_date: str, closing_since: float, deadline: float) -> None:
    """Waits until every router replica has had time to move to the next day and the day's
    postings have stopped coming (QUIET_SECONDS without one), at most DRAIN_SECONDS: a posting
    of the day that comes after that is not lost, it is booked in the next open day as a late item."""
    loop = asyncio.get_running_loop()
    switched_at = closing_since + ROUTERS_SWITCH_SECONDS
    give_up = min(deadline, loop.time() + DRAIN_SECONDS - max(0.0, time.time() - closing_since))
    while loop.time() < give_up:
        now = time.time()
        last = await store.run(queue_store.last_posting_at, business_date)
        if now >= switched_at and now - last >= QUIET_SECONDS:
            return
        await asyncio.sleep(0.05)


async def send_day_file(store: QueueStore, eod_dir: Path, address: str, context: ssl.SSLContext,
                        business_date: str) -> bridge_pb2.CloseBusinessDayResponse:
    """Writes the day's file under eod_dir (once: a file already written is sent again as it is) and
    delivers it; the close's answer if the mainframe accepts it, else Refused."""
    date = records.date_number(business_date)
    name = eod_file.file_name(date)
    path = eod_dir / name
    data = await asyncio.to_thread(_read_if_written, path)
    if data is None:
        data = await _build(store, business_date)
        await asyncio.to_thread(_write_durably, path, data)
    eod = eod_file.read(data)
    reply = await _deliver(address, context, data)
    return_code = reply["ER-RETURN-CODE"]
    if return_code == records.RC_DAY_CLOSED:
        raise Refused(errors_pb2.ERROR_REASON_BUSINESS_DAY_CLOSED,
                      f"the mainframe already closed {business_date} with another file and refused {name} "
                      f"(return code {return_code:04d}: {reply['ER-MESSAGE']}); the day cannot be closed "
                      f"again with this file")
    if return_code != records.RC_OK:
        raise Refused(errors_pb2.ERROR_REASON_CONTROL_TOTAL_MISMATCH,
                      f"the mainframe refused {name} with return code {return_code:04d}: {reply['ER-MESSAGE']}",
                      code=grpc.StatusCode.ABORTED)
    totals = eod_file.control_totals(eod.details)
    return bridge_pb2.CloseBusinessDayResponse(
        business_date=business_date, file_name=name, record_count=len(eod.details),
        debit_totals=[types_pb2.Money(currency_code=c, amount_minor=d) for c, (d, _) in totals.items()],
        credit_totals=[types_pb2.Money(currency_code=c, amount_minor=k) for c, (_, k) in totals.items()],
        accepted_by_mainframe=True, file_sequence=eod.sequence, hash_total=eod.hash_total,
    )


async def _build(store: QueueStore, business_date: str) -> bytes:
    """The day's file: every entry the mainframe posted, numbered after the days already closed. Its
    creation time and number are kept in the store the first time, so that a file built again (by the
    standby that took the lease over, whose folder does not hold the file) is the same bytes."""
    made = await store.run(queue_store.file_made, business_date)
    if made is None:
        closed = await store.run(queue_store.closed_day_count)
        made = await store.transaction(queue_store.keep_file_made, business_date, bank_calendar().local().isoformat(),
                                       closed + 1)
    created, sequence = made
    frames = await store.run(queue_store.posted_frames, business_date)
    details = [eod_file.Detail(p.posting_id, entry, p.channel, p.loan_type)
               for p in map(records.decode_posting, frames) for entry in p.entries]
    return eod_file.build(records.date_number(business_date), details, datetime.fromisoformat(created), sequence)


async def _deliver(address: str, context: ssl.SSLContext, data: bytes) -> dict:
    """Sends the file as frames of whole records on a link of its own; the EOD-REPLY."""
    try:
        reader, writer = await open_link(address, context)
    except (TimeoutError, OSError, ssl.SSLError) as fault:
        raise _unavailable(fault) from fault
    try:
        step = RECORDS_PER_FRAME * eod_file.LRECL
        for start in range(0, len(data), step):
            writer.write(encode_frame(data[start:start + step]))
            await writer.drain()
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            return records.EOD_REPLY.decode(await read_frame(reader))
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as fault:
        raise _unavailable(fault) from fault
    finally:
        writer.close()


def _unavailable(fault: Exception) -> Refused:
    return Refused(errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                   f"the mainframe did not take the end-of-day file ({type(fault).__name__}); retry", retry_after=5.0)


def _read_if_written(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    # The rename is in the directory: fsync it too, or a power cut may lose the name of a file already sent.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
