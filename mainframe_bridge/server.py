"""The bridge's gRPC server: postings in on a stream, durably queued, forwarded
to the mainframe; status lookups; the end of the business day; the day's summary.

The router may call everything; the operator's command line may look up a
posting, close the day, read the summary (to reconcile) and drop an archived day.

Its store is a SQLite file in the data folder, or, when PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL (else
PAYMESH_DATABASE_URL) is set, its own PostgreSQL database, which two bridge processes may share as
active and standby (paymesh.lease): the lease holder alone serves, keeps the link to the mainframe
and writes (every write transaction fenced by the lease's epoch); the standby is NOT_SERVING,
refuses every call with UNAVAILABLE, opens no link and forwards nothing until it takes the lease.
"""

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

import grpc
from google.protobuf import timestamp_pb2

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from mainframe_bridge import book, end_of_day, intake, queue_store, records
from mainframe_bridge.forwarder import Forwarder
from mainframe_bridge.link import client_context
from mainframe_bridge.queue_store import QueueStore, Standing
from paymesh import postgres, server, telemetry
from paymesh.authz import Bulkhead, CallerPolicy
from paymesh.business_calendar import bank_calendar
from paymesh.config import Settings, address_of
from paymesh.errors import Refused, abort, check_date
from paymesh.lease import STORE_LOST, FencedStore, Lease, fenced, refuse_on_standby, refuse_store_lost
from paymesh.postgres import PostgresStore
from paymesh.retention import keys_kept_from
from paymesh.sqlite import Store
from paymesh.streams import in_order
from paymesh.topology import BRIDGE, OPERATOR, ROUTERS, SERVICES

SERVICE = "mainframe-bridge"
_METHOD = "/bank.ledger.v1.MainframeBridgeService/"
POLICY = CallerPolicy(
    ROUTERS,
    {_METHOD + name: ROUTERS | {OPERATOR}
     for name in ("GetPostingStatus", "CloseBusinessDay", "GetLedgerSummary", "GetBusinessDayStatus",
                  "ListPostings", "ListMainframeBook")} | {_METHOD + "DropBusinessDay": frozenset([OPERATOR])},
)
log = logging.getLogger(__name__)
T = TypeVar("T")
PAGE = 1000  # postings per streamed message
POSTS_IN_FLIGHT = 8  # PostEntries messages read ahead of their acks
DATABASE_ENV_PREFIX = SERVICES[SERVICE].env_prefix  # PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL, else PAYMESH_DATABASE_URL


def open_store(data_dir: Path, database_url: str | None = None) -> Store | PostgresStore:
    """The queue's store: its PostgreSQL database when database_url is given (migrated to this
    release's schema, mainframe_bridge/schema/), else the SQLite file in the data folder.
    Raises DatabaseUnavailable (the process then waits NOT_SERVING and tries again)."""
    if database_url:
        return PostgresStore(database_url, queue_store.POSTGRES_SCHEMA_DIR, name=SERVICE)
    return Store(data_dir / f"{SERVICE}.db", queue_store.SCHEMA, queue_store.ADDED_COLUMNS, queue_store.INDEXES)


class MainframeBridgeService(bridge_grpc.MainframeBridgeServiceServicer):
    def __init__(self, settings: Settings, database_url: str | None = None):
        """database_url: the PostgreSQL database (else PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL or
        PAYMESH_DATABASE_URL; neither, the SQLite file). On PostgreSQL the process holds the
        bridge's lease or is its standby; on SQLite it is the file's only one and always active."""
        opened = open_store(settings.data_dir, database_url or postgres.database_url(DATABASE_ENV_PREFIX))
        self.lease: Lease | None = None
        self.store: QueueStore = opened
        if isinstance(opened, PostgresStore):
            self.store, self.lease = fenced(opened, SERVICE)
        self._set_serving: Callable[[bool], Awaitable[None]] | None = None
        self.calendar = bank_calendar()
        self.eod_dir = settings.data_dir / "eod"
        self.address = address_of("mainframe-emulator")
        self.context = client_context(settings.pki_dir, BRIDGE)
        self.forwarder = Forwarder(self.store, self.address, self.context)
        self._forwarding: asyncio.Task | None = None
        self._sampling: asyncio.Task | None = None
        self.figures = telemetry.Figures(SERVICE)

    def add_to(self, grpc_server) -> list[str]:
        bridge_grpc.add_MainframeBridgeServiceServicer_to_server(self, grpc_server)
        return [bridge_pb2.DESCRIPTOR.services_by_name["MainframeBridgeService"].full_name]

    @property
    def active(self) -> bool:
        return self.lease is None or self.lease.active

    async def start(self) -> None:
        """On PostgreSQL, the lease: taken at once if no other process holds it (and then the link
        to the mainframe opened), else this process is its standby and opens no link."""
        if isinstance(self.store, FencedStore) and self.lease is not None:
            await self.store.start()
            await self.lease.start(self._lease_changed)
        else:
            self._start_forwarding()
        telemetry.observe("paymesh.mainframe.link.up", SERVICE, lambda: [(int(self.forwarder.connected), {})])
        if telemetry.metrics_read():
            self._sampling = asyncio.get_running_loop().create_task(telemetry.sample_forever(SERVICE, self.sample))

    async def follow_health(self, set_serving: Callable[[bool], Awaitable[None]]) -> None:
        """SERVING while this process holds the lease (always, on SQLite); the standby NOT_SERVING."""
        self._set_serving = set_serving
        await set_serving(self.active)

    async def _lease_changed(self, active: bool) -> None:
        """The lease taken: the link opened and every posting still QUEUED sent, from the oldest (the
        mainframe answers one the old holder sent as it did then). Lost: the link closed at once, so
        a deposed holder forwards nothing more; the answers it still records fail the fence and leave
        their postings QUEUED for the new holder to send again."""
        if active:
            self._start_forwarding()
        else:
            await self._stop_forwarding()
        log.info("active: the lease holder" if active else "standby: NOT_SERVING", extra={"service": SERVICE})
        if self._set_serving is not None:
            await self._set_serving(active)

    def _start_forwarding(self) -> None:
        if self._forwarding is None or self._forwarding.done():
            self._forwarding = asyncio.get_running_loop().create_task(self.forwarder.run(), name="forwarder")

    async def _stop_forwarding(self) -> None:
        if self._forwarding is not None:
            self._forwarding.cancel()
            await asyncio.gather(self._forwarding, return_exceptions=True)
            self._forwarding = None

    async def _refuse_unless_active(self, context) -> None:
        if not self.active:
            await refuse_on_standby(context, SERVICE)

    async def _answer(self, context, work: Awaitable[T]) -> T:
        try:
            return await work
        except STORE_LOST as failed:
            await refuse_store_lost(context, SERVICE, failed)
            raise AssertionError("unreachable: abort raises") from failed

    async def sample(self) -> None:
        """The queue for the mainframe and the business day to close next, for the gauges."""
        queued, oldest = await self.store.read(queue_store.queue_figures)  # (not on the store's thread)
        age = round(max(time.time() - oldest, 0.0), 3) if oldest is not None else 0.0
        self.figures.set("paymesh.bridge.queued", [(queued, {})])
        self.figures.set("paymesh.bridge.oldest.age", [(age, {})])
        day, state = await self.store.read(queue_store.day_to_close, self.calendar.booking_date().isoformat())
        self.figures.set("paymesh.business_day.state", [
            (int(state == name), {"state": name}) for name in (queue_store.OPEN, queue_store.DAY_CLOSING,
                                                                queue_store.DAY_CLOSED)])
        cutoff = dt.datetime.combine(dt.date.fromisoformat(day), self.calendar.cutoff, self.calendar.zone)
        self.figures.set("paymesh.business_day.cutoff.timestamp", [(cutoff.timestamp(), {})])

    async def stop(self, grace: float) -> None:
        for task in (self._forwarding, self._sampling):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.forwarder.close()
        if self.lease is not None:  # after the last answer recorded: the standby takes over at once
            await self.lease.stop()
        self.store.close()

    async def PostEntries(self, request_iterator, context):
        # Each message is checked and its transaction submitted as it is read, while the previous
        # one commits (the store runs them in order); acks go out in order, each after its COMMIT.
        await self._refuse_unless_active(context)
        bulkhead, stream = Bulkhead(context), _Stream()
        try:
            async for ready in in_order(request_iterator, partial(self._queue_postings, bulkhead, stream),
                                        POSTS_IN_FLIGHT):
                for response in ready:
                    yield response
        except STORE_LOST as failed:  # the acks already sent stand; the rest is sent again
            await refuse_store_lost(context, SERVICE, failed)
        except queue_store.EarlierMessageLost as lost:
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"{lost}; send the stream's unanswered postings again",
                        errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0)

    async def _queue_postings(self, bulkhead: Bulkhead, stream: "_Stream", request: bridge_pb2.PostEntriesRequest
                              ) -> bridge_pb2.PostEntriesResponse:
        received = time.time_ns()
        prepared = [bulkhead.refusal(posting.channel) or intake.prepare(posting) for posting in request.postings]
        valid = [p for p in prepared if isinstance(p, queue_store.Queued)]
        after = stream.last_stored
        if valid:  # (submitted to the store's thread in the order read: this message's transaction after the last's)
            stream.last_stored = valid[-1].posting_id
        stored = iter(await self.store.transaction(queue_store.enqueue, valid, self.calendar, after) if valid else ())
        if valid:
            self.forwarder.notify()
        for posting, traceparent in zip(request.postings, request.traceparents):
            telemetry.record_item_span("mainframe-bridge queue posting", traceparent, received,
                                       {"posting_id": posting.posting_id})
        # Acks are added in place (a PostingAck built apart would be copied into the response).
        response = bridge_pb2.PostEntriesResponse()
        for posting, checked in zip(request.postings, prepared):
            if isinstance(checked, queue_store.Queued):
                _add_ack(response, posting.posting_id, next(stored))
            else:
                response.acks.add(posting_id=posting.posting_id, status=ledger_pb2.POSTING_STATUS_REJECTED,
                                  rejection=checked)
        return response

    async def GetPostingStatus(self, request, context):
        await self._refuse_unless_active(context)
        found = await self._answer(context, self.store.run(queue_store.standing, request.posting_id))
        if found is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no posting {request.posting_id!r} in the bridge",
                        errors_pb2.ERROR_REASON_POSTING_NOT_FOUND, metadata={"posting_id": request.posting_id})
        response = bridge_pb2.GetPostingStatusResponse(
            posting_id=request.posting_id, status=found.status, mainframe_reference=found.reference,
            queued_time=_timestamp(found.queued_at), posted_time=_timestamp(found.posted_at),
        )
        if found.rejection_reason:
            response.rejection.CopyFrom(_rejection(found))
        return response

    async def CloseBusinessDay(self, request, context):
        await self._refuse_unless_active(context)
        day, today = await check_date(context, request.business_date), self.calendar.value_date()
        if day > today:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                        f"{request.business_date} has not come yet (today is {today} in the bank's time zone)",
                        errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE, metadata={"business_date": request.business_date})
        if not self.calendar.is_business_day(day):
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                        f"{request.business_date} is not a business day (weekend or holiday): nothing is booked in it",
                        errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE, metadata={"business_date": request.business_date})
        try:
            return await end_of_day.close_day(self.store, self.eod_dir, self.address, self.context,
                                              request.business_date, _remaining(context))
        except Refused as refused:
            await refused.abort(context, business_date=request.business_date)
        except STORE_LOST as failed:  # the close is where it stood: asked again, it goes on from there
            await refuse_store_lost(context, SERVICE, failed)

    async def GetLedgerSummary(self, request, context):
        await self._refuse_unless_active(context)
        await check_date(context, request.business_date)
        rows = await self._answer(context, self.store.run(queue_store.summary, request.business_date))
        closed = await self._answer(context, self.store.run(queue_store.day_closed, request.business_date))
        return bridge_pb2.GetLedgerSummaryResponse(
            business_date=request.business_date, day_closed=closed,
            lines=[bridge_pb2.LedgerSummaryLine(
                channel=channel, loan_type=loan_type, reversal=bool(reversal), status=status, posting_count=count,
                amount=types_pb2.Money(currency_code=currency, amount_minor=amount))
                for channel, loan_type, reversal, status, currency, count, amount in rows],
        )


    async def GetBusinessDayStatus(self, request, context):
        await self._refuse_unless_active(context)
        day, accepted = await self._answer(context, self.store.run(queue_store.last_closed))
        return bridge_pb2.GetBusinessDayStatusResponse(last_closed_business_date=day, file_accepted=accepted)

    async def ListPostings(self, request, context):
        await self._refuse_unless_active(context)
        await check_date(context, request.business_date)
        rows = await self._answer(context, self.store.run(queue_store.day_postings, request.business_date))
        for start in range(0, len(rows), PAGE):
            yield bridge_pb2.ListPostingsResponse(postings=[
                ledger_pb2.QueuedPosting(posting=_posting_message(records.decode_posting(frame)), status=status,
                                         original_business_date=original or booked, mainframe_reference=reference)
                for frame, status, booked, original, reference in rows[start:start + PAGE]])

    async def DropBusinessDay(self, request, context):
        await self._refuse_unless_active(context)
        await check_date(context, request.business_date)
        try:
            dropped = await self.store.transaction(
                queue_store.drop_day, request.business_date, keys_kept_from(request.business_date))
        except Refused as refused:
            await refused.abort(context, business_date=request.business_date)
        except STORE_LOST as failed:
            await refuse_store_lost(context, SERVICE, failed)
        log.info("business day dropped from the queue", extra={"business_date": request.business_date,
                 "postings": dropped.dropped_count, "keys_forgotten": dropped.forgotten_key_count})
        return bridge_pb2.DropBusinessDayResponse(dropped=dropped)

    async def ListMainframeBook(self, request, context):
        await self._refuse_unless_active(context)  # a standby opens no link to the mainframe
        await check_date(context, request.business_date)
        try:
            postings = await book.read_book(self.address, self.context, request.business_date)
        except book.BookUnavailable as fault:
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"the mainframe did not answer the inquiry ({fault})",
                        errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=5.0)
        for start in range(0, len(postings), PAGE):
            yield bridge_pb2.ListMainframeBookResponse(postings=[
                _posting_message(records.PostingRecord(p.posting_id, records.date_number(request.business_date),
                                                              p.payment_id, p.channel, p.loan_type, p.entries))
                for p in postings[start:start + PAGE]])


class _Stream:
    """A PostEntries stream as its messages are stored: the last posting of the latest message given
    to the store, which the next message's transaction checks was stored (queue_store.enqueue)."""

    def __init__(self) -> None:
        self.last_stored: str | None = None


_SIDE_OF = {letter: side for side, letter in records.SIDES.items()}


def _posting_message(record: records.PostingRecord) -> ledger_pb2.Posting:
    """A posting record (as the mainframe has it) as the Posting message it came from."""
    # The record's channel and loan type are the numbers the mainframe's frame carried.
    return ledger_pb2.Posting(
        posting_id=record.posting_id, business_date=records.iso_date(record.business_date),
        payment_id=record.payment_id, channel=cast(types_pb2.Channel, record.channel),
        loan_type=cast(types_pb2.LoanType, record.loan_type),
        entries=[ledger_pb2.LedgerEntry(entry_id=e.entry_id, account=e.account, side=_SIDE_OF[e.side],
                                        amount=types_pb2.Money(currency_code=e.currency, amount_minor=e.amount))
                 for e in record.entries])


def _remaining(context) -> float:
    remaining = context.time_remaining()
    return 60.0 if remaining is None else max(remaining - 0.5, 0.1)


def _add_ack(response: bridge_pb2.PostEntriesResponse, posting_id: str, standing: Standing) -> None:
    ack = response.acks.add(posting_id=posting_id, status=standing.status)
    if standing.rejection_reason:
        ack.rejection.CopyFrom(_rejection(standing))


def _rejection(standing: Standing) -> errors_pb2.Rejection:
    return errors_pb2.Rejection(reason=standing.rejection_reason, message=standing.rejection_message)


def _timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def main() -> None:
    server.main(SERVICE, POLICY, MainframeBridgeService)
