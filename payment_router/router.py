"""The payment's path behind the router's door: journal it, apply it at its core
over a long-lived stream, then hand its ledger posting to the mainframe bridge and
its result to confirmations through the journal's outbox.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial

from google.protobuf import timestamp_pb2

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2, confirmations_pb2
from bank.ledger.v1 import ledger_pb2, mainframe_bridge_service_pb2
from bank.loans.v1 import loan_core_service_pb2
from bank.payments.v1 import payments_pb2
from payment_router.booking import Booking
from payment_router.journal import Accepted, Journal, Outcome
from payment_router.outbox import CONFIRMATIONS, CONFIRMATIONS_BATCH, POSTINGS, Outbox
from payment_router.pacing import BatchPacer
from paymesh import telemetry
from paymesh.errors import reason_name
from paymesh.postgres import STORE_UNAVAILABLE
from paymesh.streams import BatchingStream
from paymesh.topology import CHANNEL_NAMES, CORE_OF

log = logging.getLogger(__name__)
# A core's answer the journal could not take (a database failover) is recorded again after these pauses.
RECORD_RETRY_FIRST_SECONDS, RECORD_RETRY_MAX_SECONDS = 0.1, 2.0


def item_stream(name: str, rpc, request_type, items_field: str, answers_field: str, id_field: str,
                linger_seconds: float = 0.002, priority: types_pb2.Priority = types_pb2.PRIORITY_UNSPECIFIED
                ) -> BatchingStream:
    """A stream whose items are (message, traceparent): the payment's trace travels beside it.
    Requests carry the messages in items_field; responses answer in answers_field, by id_field;
    priority (if any) tells the peer who waits for them."""
    said = {"priority": priority} if priority else {}
    return BatchingStream(
        name, rpc,
        to_request=lambda items: request_type(
            **{items_field: [m for m, _ in items]}, traceparents=[t for _, t in items], **said),
        results_of=lambda response: [(getattr(a, id_field), a) for a in getattr(response, answers_field)],
        key_of=lambda item: getattr(item[0], id_field),
        linger_seconds=linger_seconds,
    )


def core_stream(name: str, stub, priority: types_pb2.Priority) -> BatchingStream:
    return item_stream(name, stub.ApplyPayments, loan_core_service_pb2.ApplyPaymentsRequest,
                       "payments", "outcomes", "payment_id", priority=priority)


ONLINE, STREAM, BATCH = types_pb2.PRIORITY_ONLINE, types_pb2.PRIORITY_STREAM, types_pb2.PRIORITY_BATCH


class CoreLanes:
    """A core's ApplyPayments streams, one per priority: a message is answered in its stream's
    order, so an online payment behind a day file's message on one stream would wait for it.
    The day-file stream's window is the router's pacer's (payment_router.pacing)."""

    def __init__(self, name: str, stub):
        self.name = name
        self.streams = {priority: core_stream(f"{name}.{_lane_name(priority)}", stub, priority)
                        for priority in (ONLINE, STREAM, BATCH)}

    @property
    def in_flight(self) -> int:
        return sum(stream.in_flight for stream in self.streams.values())

    def start(self) -> None:
        for stream in self.streams.values():
            stream.start()

    async def close(self) -> None:
        for stream in self.streams.values():
            await stream.close()

    async def wait_connected(self, timeout: float) -> bool:
        return await self.streams[ONLINE].wait_connected(timeout)

    async def submit(self, item, priority: types_pb2.Priority):
        started = time.perf_counter()
        outcome = await self.streams[priority].submit(item)
        telemetry.record_hop_latency(f"router->{self.name}", time.perf_counter() - started)
        return outcome


def _lane_name(priority: types_pb2.Priority) -> str:
    return types_pb2.Priority.Name(priority).removeprefix("PRIORITY_").lower()


def bridge_stream(stub) -> BatchingStream:
    # Its items come in pages from the outbox forwarder, which lingers itself.
    return item_stream("mainframe-bridge", stub.PostEntries, mainframe_bridge_service_pb2.PostEntriesRequest,
                       "postings", "acks", "posting_id", linger_seconds=0)


def confirmations_stream(stub, priority: types_pb2.Priority) -> BatchingStream:
    name = "confirmations" if priority != types_pb2.PRIORITY_BATCH else "confirmations.batch"
    return item_stream(name, stub.PublishConfirmations,
                       confirmation_service_pb2.PublishConfirmationsRequest, "confirmations", "acks", "payment_id",
                       linger_seconds=0, priority=priority)


class Router:
    def __init__(self, journal: Journal, cores: dict[types_pb2.LoanType, CoreLanes], bridge: BatchingStream,
                 confirmations: BatchingStream, confirmations_batch: BatchingStream, booking: Booking, bridge_stub):
        self.journal = journal
        self.booking = booking
        self.bridge_stub = bridge_stub  # for the business day's status
        self.cores = cores
        self.bridge = bridge
        self.confirmations = confirmations
        self.confirmations_batch = confirmations_batch
        self.outbox = Outbox(journal, bridge, confirmations, confirmations_batch)
        # One pacer for every core's day-file stream: all are held to the same online calls.
        self.pacer = BatchPacer([core.streams[BATCH] for core in cores.values()])
        self._in_flight: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        for stream in self._streams():
            stream.start()
            telemetry.observe_queue_depth(f"router.in-flight.{stream.name}", partial(_in_flight, stream))
        telemetry.observe("paymesh.peer.up", "router", self._peers_up)
        await self.outbox.start()
        self._tasks = [asyncio.create_task(self.booking.follow(self.bridge_stub)),
                       asyncio.create_task(self.pacer.run(), name="batch-pacer")]
        # Recovery: whatever was journaled but never answered goes to its core again.
        for payment in await self.journal.unanswered():
            self._dispatch(payment, STREAM)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.outbox.stop()
        for stream in self._streams():
            await stream.close()

    def _peers_up(self) -> list[tuple[float, dict[str, str]]]:
        """Whether each peer's stream is connected (a core's online one), read at each scrape."""
        streams = [(core.name, core.streams[ONLINE]) for core in self.cores.values()]
        streams += [("mainframe-bridge", self.bridge), ("confirmations", self.confirmations)]
        return [(int(stream.connected), {"peer": peer}) for peer, stream in streams]

    def _streams(self) -> list[CoreLanes | BatchingStream]:
        return [*self.cores.values(), self.bridge, self.confirmations, self.confirmations_batch]

    async def drain(self, timeout: float) -> None:
        """Graceful shutdown: waits, at most timeout in all, for the payments in flight to be
        answered and recorded, then for the outbox to reach the bridge and confirmations, so a
        replica scaled away leaves nothing behind (what is left goes out at its next start)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=timeout)
        while await self.outbox.undelivered() and loop.time() < deadline:
            await asyncio.sleep(0.05)

    def observe_online(self, seconds: float) -> None:
        """An online call's whole time in the router: what the pacer holds day files to."""
        self.pacer.observe_online(seconds)

    async def core_available(self, loan_type: types_pb2.LoanType, timeout: float) -> bool:
        """True when the core's stream is up; a stream reconnecting gets timeout seconds."""
        return await self.cores[loan_type].wait_connected(timeout)

    async def accept(self, entries: list[Accepted], priority: types_pb2.Priority) -> list[Outcome]:
        """Journals the payments (or finds those journaled under their ids) and sends each that
        still awaits its core there: the journal's Outcomes. Callers shield this, so a caller
        giving up never leaves a journaled payment unsent. priority: who waits for them."""
        outcomes = await self.journal.accept(entries, priority)
        for entry, outcome in zip(entries, outcomes):
            if outcome.body_hash == entry.body_hash and outcome.payment.status == types_pb2.PAYMENT_STATUS_ACCEPTED:
                self._dispatch(outcome.payment, priority)
        return outcomes

    def results_of(self, payments: list[payments_pb2.Payment], priority: types_pb2.Priority) -> list[asyncio.Future]:
        """A future per payment of its final state, applying it at its core if that is still to do.
        Cancelling the wait for one never cancels the payment's application."""
        futures = []
        for payment in payments:
            if payment.status != types_pb2.PAYMENT_STATUS_ACCEPTED:
                future = asyncio.get_running_loop().create_future()
                future.set_result(payment)
            else:
                future = asyncio.shield(self._dispatch(payment, priority))
            futures.append(future)
        return futures

    async def payment(self, payment_id: str) -> payments_pb2.Payment | None:
        """The journaled payment, with its confirmation sequence even if not yet swept into the journal."""
        payment = await self.journal.get(payment_id)
        if payment is not None and not payment.confirmation_sequence:
            payment.confirmation_sequence = self.outbox.recent_sequence(payment_id)
        return payment

    def _dispatch(self, payment: payments_pb2.Payment, priority: types_pb2.Priority) -> asyncio.Task:
        """One task per payment id, independent of the caller: a caller giving up
        (deadline, disconnect) never leaves a result unrecorded."""
        task = self._in_flight.get(payment.payment_id)
        if task is None:
            task = asyncio.create_task(self._apply(payment, priority))
            self._in_flight[payment.payment_id] = task
            task.add_done_callback(lambda _: self._in_flight.pop(payment.payment_id, None))
        return task

    async def _apply(self, payment: payments_pb2.Payment, priority: types_pb2.Priority) -> payments_pb2.Payment:
        # The channel's call (its server span) is the parent of the core's, the bridge's and
        # confirmations' spans for this payment; its context travels beside each item.
        traceparent = telemetry.current_traceparent()
        request = loan_core_service_pb2.LoanPayment(
            payment_id=payment.payment_id, loan_id=payment.loan_id, amount=payment.amount,
            prepayment_mode=payment.prepayment_mode, business_date=payment.business_date,
            channel=payment.channel, value_date=payment.value_date,
        )
        outcome = await self.cores[payment.loan_type].submit((request, traceparent), priority)
        core = CORE_OF[payment.loan_type]
        result = payments_pb2.Payment()
        result.CopyFrom(payment)
        result.result_time.FromNanoseconds(time.time_ns())
        outbox = []
        if outcome.HasField("applied"):
            applied = outcome.applied
            result.status = types_pb2.PAYMENT_STATUS_APPLIED
            result.allocation.CopyFrom(applied.allocation)
            result.outstanding_balance.CopyFrom(applied.outstanding_balance)
            outbox.append((POSTINGS, applied.posting.posting_id, applied.posting.SerializeToString(), traceparent))
        else:
            result.status = types_pb2.PAYMENT_STATUS_REJECTED
            result.rejection.CopyFrom(outcome.rejection)
            for violation in result.rejection.field_violations:
                # The core names its LoanPayment's fields; the channel sent them in its order, `payment`.
                violation.field = f"payment.{violation.field}"
        confirmation = confirmation_of(result)
        # A day file's confirmations have their own way to confirmations, behind online ones.
        topic = CONFIRMATIONS_BATCH if priority == BATCH else CONFIRMATIONS
        outbox.append((topic, confirmation.payment_id, confirmation.SerializeToString(), traceparent))
        await self._record(result, outbox, priority)
        telemetry.count_payment(CHANNEL_NAMES[payment.channel], core, types_pb2.PaymentStatus.Name(result.status))
        if result.status == types_pb2.PAYMENT_STATUS_REJECTED:
            telemetry.count_refusal(CHANNEL_NAMES[payment.channel], reason_name(result.rejection.reason), core)
        self.outbox.wake(*((POSTINGS, topic) if outcome.HasField("applied") else (topic,)))
        return result

    async def _record(self, payment: payments_pb2.Payment, outbox: list[tuple[str, str, bytes, str]],
                      priority: types_pb2.Priority, hold: bool = True) -> None:
        """Records the core's answer, trying again for as long as the journal cannot be written (a
        database failover takes seconds): the core has applied it, so it must reach the journal, the
        ledger and the channel. Its callers wait meanwhile. Recording twice is harmless: the payment's
        row is set again, its outbox rows are kept once."""
        pause = RECORD_RETRY_FIRST_SECONDS
        while True:
            try:
                return await self.journal.record(payment, outbox, priority, hold=hold)
            except STORE_UNAVAILABLE as failed:
                log.warning("a core's answer not recorded yet: the journal cannot be written; trying again",
                            extra={"payment_id": payment.payment_id, "error": type(failed).__name__,
                                   "retry_s": pause})
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECORD_RETRY_MAX_SECONDS)

    async def record_reversal(self, reversed_payment: payments_pb2.Payment, posting: ledger_pb2.Posting,
                              revisions: Sequence[loan_core_service_pb2.PaymentRevision] = ()) -> None:
        """The reversal, and the revisions of the loan's later payments it brought, for the ledger
        and for their channels, in one transaction with the payment's new state."""
        confirmation = confirmation_of(reversed_payment)
        traceparent = telemetry.current_traceparent()
        # A correction goes behind what it corrects: on a day file's way while that one's confirmation
        # is still waiting there, so a reversal never reaches a channel before its payment.
        waiting = await self.journal.queued(CONFIRMATIONS_BATCH, [reversed_payment.payment_id,
                                                                  *(r.payment_id for r in revisions)])
        outbox = [
            (POSTINGS, posting.posting_id, posting.SerializeToString(), traceparent),
            (CONFIRMATIONS_BATCH if reversed_payment.payment_id in waiting else CONFIRMATIONS,
             f"{confirmation.payment_id}:reversed", confirmation.SerializeToString(), traceparent),
        ]
        for revision in revisions:
            revised = confirmation_of_revision(revision, reversed_payment)
            outbox += [(POSTINGS, revision.revision_id, revision.posting.SerializeToString(), traceparent),
                       (CONFIRMATIONS_BATCH if revision.payment_id in waiting else CONFIRMATIONS,
                        revision.revision_id, revised.SerializeToString(), traceparent)]
        # Not held by this replica: the rows may wait behind the payment's result (Journal.claim).
        await self._record(reversed_payment, outbox, ONLINE, hold=False)
        self.outbox.wake()



def confirmation_of(payment: payments_pb2.Payment) -> confirmations_pb2.Confirmation:
    reversed_ = payment.status == types_pb2.PAYMENT_STATUS_REVERSED
    return confirmations_pb2.Confirmation(
        payment_id=payment.payment_id, channel=payment.channel, idempotency_key=payment.idempotency_key,
        loan_id=payment.loan_id, loan_type=payment.loan_type, status=payment.status, amount=payment.amount,
        # A reversal confirms what it took back (the allocation as last revised).
        allocation=(payment.reversed_allocation if reversed_ and payment.HasField("reversed_allocation")
                    else payment.allocation),
        outstanding_balance=payment.outstanding_balance,
        rejection=payment.rejection, value_date=payment.value_date,
        # A reversal is confirmed on the day it was booked in, the payment on its own.
        business_date=(payment.reversal_business_date if reversed_ else payment.business_date),
        result_time=payment.result_time if payment.HasField("result_time") else timestamp_pb2.Timestamp(),
    )


def confirmation_of_revision(revision: loan_core_service_pb2.PaymentRevision,
                             reversed_payment: payments_pb2.Payment) -> confirmations_pb2.Confirmation:
    """A later payment's allocation as the reversal of an earlier one of its loan revised it,
    for the later payment's own channel (which may not be the reversing one)."""
    confirmation = confirmations_pb2.Confirmation(
        payment_id=revision.payment_id, channel=revision.channel, loan_id=revision.loan_id,
        loan_type=reversed_payment.loan_type, status=types_pb2.PAYMENT_STATUS_APPLIED, amount=revision.amount,
        allocation=revision.allocation, allocation_before=revision.allocation_before,
        outstanding_balance=revision.outstanding_balance, business_date=revision.business_date,
        revision=revision.revision, reversed_payment_id=reversed_payment.payment_id,
    )
    confirmation.result_time.FromNanoseconds(time.time_ns())
    return confirmation


def _in_flight(stream: "CoreLanes | BatchingStream") -> int:
    return stream.in_flight
