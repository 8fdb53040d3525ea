"""The payment's path behind the router's door: journal it, apply it at its core
over a long-lived stream, then hand its ledger posting to the mainframe bridge and
its result to confirmations through the journal's outbox.
"""

import asyncio
import collections
import logging
import time

from google.protobuf import timestamp_pb2

from bank.common.v1 import errors_pb2, types_pb2
from bank.confirmations.v1 import confirmation_service_pb2, confirmations_pb2
from bank.ledger.v1 import ledger_pb2, mainframe_bridge_service_pb2
from bank.loans.v1 import loan_core_service_pb2
from bank.payments.v1 import payments_pb2
from payment_router.booking import Booking
from payment_router.journal import Accepted, Journal, Outcome
from paymesh import telemetry
from paymesh.streams import BatchingStream
from paymesh.topology import CHANNEL_NAMES, CORE_OF

log = logging.getLogger(__name__)
POSTINGS, CONFIRMATIONS = "posting", "confirmation"
RECENT_SEQUENCES = 20_000  # sequences kept in memory for callers who ask just after the acknowledgement
# How long the outbox forwarders gather rows before reading a page: no caller waits for
# the ledger, so postings wait longer and travel in far fewer, fuller messages.
FORWARD_LINGER_SECONDS = {POSTINGS: 0.02, CONFIRMATIONS: 0.002}
SWEEP_SECONDS = 0.2  # how often delivered outbox rows are forgotten, in one commit


def item_stream(name: str, rpc, request_type, items_field: str, answers_field: str, id_field: str,
                linger_seconds: float = 0.002) -> BatchingStream:
    """A stream whose items are (message, traceparent): the payment's trace travels beside it.
    Requests carry the messages in items_field; responses answer in answers_field, by id_field."""
    return BatchingStream(
        name, rpc,
        to_request=lambda items: request_type(
            **{items_field: [m for m, _ in items]}, traceparents=[t for _, t in items]),
        results_of=lambda response: [(getattr(a, id_field), a) for a in getattr(response, answers_field)],
        key_of=lambda item: getattr(item[0], id_field),
        linger_seconds=linger_seconds,
    )


def core_stream(name: str, stub) -> BatchingStream:
    return item_stream(name, stub.ApplyPayments, loan_core_service_pb2.ApplyPaymentsRequest,
                       "payments", "outcomes", "payment_id")


def bridge_stream(stub) -> BatchingStream:
    # Its items come in pages from the outbox forwarder, which lingers itself.
    return item_stream("mainframe-bridge", stub.PostEntries, mainframe_bridge_service_pb2.PostEntriesRequest,
                       "postings", "acks", "posting_id", linger_seconds=0)


def confirmations_stream(stub) -> BatchingStream:
    return item_stream("confirmations", stub.PublishConfirmations,
                       confirmation_service_pb2.PublishConfirmationsRequest, "confirmations", "acks", "payment_id",
                       linger_seconds=0)


class Router:
    def __init__(self, journal: Journal, cores: dict[int, BatchingStream], bridge: BatchingStream,
                 confirmations: BatchingStream, booking: Booking, bridge_stub):
        self.journal = journal
        self.booking = booking
        self.bridge_stub = bridge_stub  # for the business day's status
        self.cores = cores
        self.bridge = bridge
        self.confirmations = confirmations
        self._in_flight: dict[str, asyncio.Task] = {}
        self._outbox_ready = {POSTINGS: asyncio.Event(), CONFIRMATIONS: asyncio.Event()}
        self._sequence_waiters: dict[str, list[asyncio.Future]] = {}
        self._recent_sequences: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._delivered_keys: list[tuple[str, list[str], dict[str, int]]] = []  # (topic, keys, sequences)
        self._tasks: list[asyncio.Task] = []
        self.refused_rows = 0  # outbox rows a peer refused, waiting for the operator (a gauge)

    async def start(self) -> None:
        for stream in (*self.cores.values(), self.bridge, self.confirmations):
            stream.start()
            telemetry.observe_queue_depth(f"router.in-flight.{stream.name}", lambda s=stream: s.in_flight)
        self.refused_rows = len(await self.journal.refused())
        telemetry.observe_queue_depth("router.outbox.refused", lambda: self.refused_rows)
        self._tasks = [
            asyncio.create_task(self._forward(POSTINGS, self.bridge, ledger_pb2.Posting)),
            asyncio.create_task(self._forward(CONFIRMATIONS, self.confirmations, confirmations_pb2.Confirmation)),
            asyncio.create_task(self._sweep_delivered()),
            asyncio.create_task(self.booking.follow(self.bridge_stub)),
        ]
        # Recovery: whatever was journaled but never answered goes to its core again.
        for payment in await self.journal.unanswered():
            self._dispatch(payment)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._forget_delivered()
        for stream in (*self.cores.values(), self.bridge, self.confirmations):
            await stream.close()

    async def drain(self, timeout: float) -> None:
        """Graceful shutdown: waits, at most timeout in all, for the payments in flight to be
        answered and recorded, then for the outbox to reach the bridge and confirmations, so a
        replica scaled away leaves nothing behind (what is left goes out at its next start)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=timeout)
        while True:
            await self._forget_delivered()
            if not await self.journal.undelivered() or loop.time() >= deadline:
                return
            await asyncio.sleep(0.05)

    async def core_available(self, loan_type: int, timeout: float) -> bool:
        """True when the core's stream is up; a stream reconnecting gets timeout seconds."""
        return await self.cores[loan_type].wait_connected(timeout)

    async def accept(self, entries: list[Accepted]) -> list[Outcome]:
        """Journals the payments (or finds those journaled under their ids) and sends each that
        still awaits its core there: the journal's Outcomes. Callers shield this, so a caller
        giving up never leaves a journaled payment unsent."""
        outcomes = await self.journal.accept(entries)
        for entry, outcome in zip(entries, outcomes):
            if outcome.body_hash == entry.body_hash and outcome.payment.status == types_pb2.PAYMENT_STATUS_ACCEPTED:
                self._dispatch(outcome.payment)
        return outcomes

    def results_of(self, payments: list[payments_pb2.Payment]) -> list[asyncio.Future]:
        """A future per payment of its final state, applying it at its core if that is still to do.
        Cancelling the wait for one never cancels the payment's application."""
        futures = []
        for payment in payments:
            if payment.status != types_pb2.PAYMENT_STATUS_ACCEPTED:
                future = asyncio.get_running_loop().create_future()
                future.set_result(payment)
            else:
                future = asyncio.shield(self._dispatch(payment))
            futures.append(future)
        return futures

    async def payment(self, payment_id: str) -> payments_pb2.Payment | None:
        """The journaled payment, with its confirmation sequence even if not yet swept into the journal."""
        payment = await self.journal.get(payment_id)
        if payment is not None and not payment.confirmation_sequence:
            payment.confirmation_sequence = self._recent_sequences.get(payment_id, 0)
        return payment

    async def confirmation_sequence(self, payment_id: str, timeout: float) -> int:
        """Waits (at most timeout) for the result's sequence on the confirmation stream; 0 if not yet."""
        if payment_id in self._recent_sequences:  # acknowledged before the caller asked
            return self._recent_sequences[payment_id]
        future = asyncio.get_running_loop().create_future()
        self._sequence_waiters.setdefault(payment_id, []).append(future)
        self._outbox_ready[CONFIRMATIONS].set()
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return 0
        finally:
            waiters = self._sequence_waiters.get(payment_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._sequence_waiters.pop(payment_id, None)

    def _dispatch(self, payment: payments_pb2.Payment) -> asyncio.Task:
        """One task per payment id, independent of the caller: a caller giving up
        (deadline, disconnect) never leaves a result unrecorded."""
        task = self._in_flight.get(payment.payment_id)
        if task is None:
            task = asyncio.create_task(self._apply(payment))
            self._in_flight[payment.payment_id] = task
            task.add_done_callback(lambda _: self._in_flight.pop(payment.payment_id, None))
        return task

    async def _apply(self, payment: payments_pb2.Payment) -> payments_pb2.Payment:
        # The channel's call (its server span) is the parent of the core's, the bridge's and
        # confirmations' spans for this payment; its context travels beside each item.
        traceparent = telemetry.current_traceparent()
        request = loan_core_service_pb2.LoanPayment(
            payment_id=payment.payment_id, loan_id=payment.loan_id, amount=payment.amount,
            prepayment_mode=payment.prepayment_mode, business_date=payment.business_date,
            channel=payment.channel, value_date=payment.value_date,
        )
        started = time.perf_counter()
        outcome = await self.cores[payment.loan_type].submit((request, traceparent))
        core = CORE_OF[payment.loan_type]
        telemetry.record_hop_latency(f"router->{core}", time.perf_counter() - started)
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
        confirmation = confirmation_of(result)
        outbox.append((CONFIRMATIONS, confirmation.payment_id, confirmation.SerializeToString(), traceparent))
        await self.journal.record(result, outbox)
        telemetry.count_payment(CHANNEL_NAMES[payment.channel], core, types_pb2.PaymentStatus.Name(result.status))
        for topic in (POSTINGS, CONFIRMATIONS) if outcome.HasField("applied") else (CONFIRMATIONS,):
            self._outbox_ready[topic].set()
        return result

    async def record_reversal(self, reversed_payment: payments_pb2.Payment, posting: ledger_pb2.Posting) -> None:
        confirmation = confirmation_of(reversed_payment)
        traceparent = telemetry.current_traceparent()
        await self.journal.record(reversed_payment, [
            (POSTINGS, posting.posting_id, posting.SerializeToString(), traceparent),
            (CONFIRMATIONS, f"{confirmation.payment_id}:reversed", confirmation.SerializeToString(), traceparent),
        ])
        for event in self._outbox_ready.values():
            event.set()

    async def replay_refused(self, keys: list[tuple[str, str]] | None) -> int:
        """Sends refused outbox rows (topic, key), or all when keys is None, again; how many."""
        count = await self.journal.replay_refused(keys)
        self.refused_rows -= count
        for event in self._outbox_ready.values():
            event.set()
        return count

    async def _forward(self, topic: str, stream: BatchingStream, message_type) -> None:
        """Store-and-forward: sends the outbox in order. Pages go out one behind the other
        without waiting for the previous page's acknowledgements; a row is deleted once its
        peer acknowledged it (after a restart, everything left is sent again)."""
        ready, last_id, deliveries = self._outbox_ready[topic], 0, set()
        while True:
            try:
                await asyncio.wait_for(ready.wait(), timeout=1.0)
            except TimeoutError:
                pass
            ready.clear()
            await asyncio.sleep(FORWARD_LINGER_SECONDS[topic])
            rows = await self.journal.outbox(topic, after_id=last_id, limit=2000)
            if not rows:
                continue
            ready.set()  # there may be more behind this page
            items = [(message_type.FromString(body), traceparent) for _, _, body, traceparent in rows]
            # The stream answers by payment id: a payment's second result (its reversal) goes
            # alone, once its first has been answered, rather than share the first one's answer.
            cut, seen = None, set()
            for n, item in enumerate(items):
                key = stream.key_of(item)
                if key in seen or key in stream.pending_keys:
                    cut = n
                    break
                seen.add(key)
            if cut == 0:
                await asyncio.gather(*deliveries)
                continue
            rows, items = rows[:cut], items[:cut]
            last_id = rows[-1][0]
            delivery = asyncio.create_task(self._delivered(topic, rows, await stream.submit_many(items)))
            deliveries.add(delivery)
            delivery.add_done_callback(deliveries.discard)

    async def _delivered(self, topic: str, rows, answers: list[asyncio.Future]) -> None:
        acks = await asyncio.gather(*answers)
        refusals = [(row[1], ack.rejection.reason, ack.rejection.message)
                    for row, ack in zip(rows, acks) if _refused(topic, ack)]
        if refusals:
            # Never as if delivered: the row stays, marked, until an operator replays it.
            await self.journal.refuse(topic, refusals)
            self.refused_rows += len(refusals)
            for key, reason, message in refusals:
                log.error("peer refused an outbox row; kept for the operator (paymesh outbox)", extra={
                    "topic": topic, "item_key": key, "reason": errors_pb2.ErrorReason.Name(reason),
                    "detail": message[:200]})
                telemetry.count_refused_delivery(topic, errors_pb2.ErrorReason.Name(reason))
            refused_keys = {key for key, _, _ in refusals}
            rows = [row for row in rows if row[1] not in refused_keys]
        sequences = {a.payment_id: a.sequence for a in acks if a.sequence} if topic == CONFIRMATIONS else {}
        # The confirmation is durable at its service now: a waiting caller need not wait for our bookkeeping.
        for payment_id, sequence in sequences.items():
            self._recent_sequences[payment_id] = sequence
            for future in self._sequence_waiters.get(payment_id, []):
                if not future.done():
                    future.set_result(sequence)
        while len(self._recent_sequences) > RECENT_SEQUENCES:
            self._recent_sequences.popitem(last=False)
        # Forgetting delivered rows can wait for the next sweep: a row not yet forgotten when
        # the router dies is only sent again, and its peer answers the replay as the first time.
        self._delivered_keys.append((topic, [key for _, key, _, _ in rows], sequences))

    async def _sweep_delivered(self) -> None:
        """Every SWEEP_SECONDS, one commit forgets every row delivered since the last."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            await self._forget_delivered()

    async def _forget_delivered(self) -> None:
        swept, self._delivered_keys = self._delivered_keys, []
        if swept:
            await self.journal.done(swept)


def _refused(topic: str, ack) -> bool:
    """Whether the peer's answer refuses the row (the bridge: REJECTED; confirmations: a rejection)."""
    if topic == POSTINGS:
        return ack.status == ledger_pb2.POSTING_STATUS_REJECTED
    return ack.HasField("rejection") and ack.rejection.reason != 0


def confirmation_of(payment: payments_pb2.Payment) -> confirmations_pb2.Confirmation:
    return confirmations_pb2.Confirmation(
        payment_id=payment.payment_id, channel=payment.channel, idempotency_key=payment.idempotency_key,
        loan_id=payment.loan_id, loan_type=payment.loan_type, status=payment.status, amount=payment.amount,
        allocation=payment.allocation, outstanding_balance=payment.outstanding_balance,
        rejection=payment.rejection, value_date=payment.value_date,
        # A reversal is confirmed on the day it was booked in, the payment on its own.
        business_date=(payment.reversal_business_date if payment.status == types_pb2.PAYMENT_STATUS_REVERSED
                       else payment.business_date),
        result_time=payment.result_time if payment.HasField("result_time") else timestamp_pb2.Timestamp(),
    )
