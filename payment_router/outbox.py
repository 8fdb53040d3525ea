"""The router's outbox forwarders: what the journal's outbox holds for the mainframe bridge and
for confirmations goes out in order, over each peer's long-lived stream, until the peer
acknowledges it; a row the peer refused is kept, marked, for an operator to replay.

On a journal shared by router replicas (PostgreSQL) each forwarder claims its pages
(Journal.claim): the rows its replica wrote, then any free or left by a replica whose lease
lapsed, so each row goes out from one replica, not from every one. It renews the claims of what
it sent until the peer answers.

On a journal of its own (SQLite) the forwarders send what this process records without reading it
back: the journal tells them each row as it commits (Journal.on_written), and they read the table
only until they have caught up with it (at start, after a replay of refused rows, or when they fell
too far behind), which saves the journal's one thread a read for every few payments.

Confirmations' acknowledgements carry each result's sequence: a channel's online call waits
here (briefly) for its payment's, so it can tell the channel where to resume its subscription.
"""

import asyncio
import collections
import itertools
import logging
import time

from google.protobuf.message import Message

from bank.common.v1 import errors_pb2
from bank.confirmations.v1 import confirmations_pb2
from bank.ledger.v1 import ledger_pb2
from payment_router.journal import (CLAIM_LEASE_SECONDS, CONFIRMATIONS, CONFIRMATIONS_BATCH, POSTINGS, Journal,
                                    OutboxRow)
from paymesh import telemetry
from paymesh.aio import wait_set
from paymesh.postgres import STORE_UNAVAILABLE
from paymesh.streams import BatchingStream

log = logging.getLogger(__name__)
RECENT_SEQUENCES = 20_000  # sequences kept in memory for callers who ask just after the acknowledgement
# How long the forwarders gather rows before reading a page: no caller waits for the ledger,
# so postings wait longer and travel in far fewer, fuller messages.
FORWARD_LINGER_SECONDS = {POSTINGS: 0.02, CONFIRMATIONS: 0.002, CONFIRMATIONS_BATCH: 0.002}
SWEEP_SECONDS = 0.2  # how often delivered outbox rows are forgotten, in one commit
STORE_RETRY_SECONDS = 0.5  # a journal that cannot be reached (a database failover) is tried again after this
# How often a forwarder on a shared journal renews its claims on the rows it sent and waits to hear of:
# three times a lease, so a peer slow to answer does not make another replica send them too.
RENEW_SECONDS = CLAIM_LEASE_SECONDS / 3
# Rows read at once: a day file's confirmations in smaller pages, as each read holds the journal's
# one SQLite thread, which an online payment's commits wait for.
PAGE_ROWS = {POSTINGS: 2000, CONFIRMATIONS: 2000, CONFIRMATIONS_BATCH: 500}
# Rows recorded and not yet sent that a forwarder holds in memory (per topic); past it (a peer long away)
# it forgets them and reads the table again until it has caught up.
WRITTEN_ROWS_HELD = 20_000
PEER_OF = {POSTINGS: "mainframe-bridge", CONFIRMATIONS: "confirmations", CONFIRMATIONS_BATCH: "confirmations"}


class Outbox:
    def __init__(self, journal: Journal, bridge: BatchingStream, confirmations: BatchingStream,
                 confirmations_batch: BatchingStream):
        self.journal = journal
        self._streams: dict[str, tuple[BatchingStream, type[Message]]] = {
            POSTINGS: (bridge, ledger_pb2.Posting), CONFIRMATIONS: (confirmations, confirmations_pb2.Confirmation),
            CONFIRMATIONS_BATCH: (confirmations_batch, confirmations_pb2.Confirmation)}
        self._ready = {topic: asyncio.Event() for topic in self._streams}
        self._sequence_waiters: dict[str, list[asyncio.Future]] = {}
        self._recent_sequences: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._delivered_keys: list[tuple[str, list[str], dict[str, int]]] = []  # (topic, keys, sequences)
        # On a shared journal, the rows claimed and sent whose peer's answer is still to be swept: {topic: {key: id}}.
        self._claimed: dict[str, dict[str, int]] = {topic: {} for topic in self._streams}
        # On a journal of its own: the rows recorded since the last read of the table, in id order. They are
        # all the forwarder has to send once it has caught up with the table: a read found it exhausted, and
        # no row has been written past _written since that read began (_forgotten counts such moments: held
        # rows forgotten, refused rows replayed). _caught_up holds the count at that read, or None.
        self._written: dict[str, collections.deque[OutboxRow]] = {topic: collections.deque() for topic in self._streams}
        self._forgotten = dict.fromkeys(self._streams, 0)
        self._caught_up: dict[str, int | None] = dict.fromkeys(self._streams)
        if not journal.shared:
            journal.on_written = self._on_written
        self.rows_sent = collections.Counter[str]()  # per topic, since start (a row sent again counts again)
        self._tasks: list[asyncio.Task] = []
        self.refused_rows = 0  # rows a peer refused, waiting for the operator (a gauge)
        self.figures = telemetry.Figures("router.outbox")

    async def start(self) -> None:
        self.refused_rows = len(await self.journal.refused())
        telemetry.observe_queue_depth("router.outbox.refused", lambda: self.refused_rows)
        self._tasks = [asyncio.create_task(self._forward(topic)) for topic in self._streams]
        self._tasks.append(asyncio.create_task(self._sweep_delivered()))
        if self.journal.shared:
            self._tasks.append(asyncio.create_task(self._renew_claims()))
        if telemetry.metrics_read():
            self._tasks.append(asyncio.create_task(telemetry.sample_forever("router.outbox", self.sample)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._forget_delivered()
        if self.journal.shared:  # what the drain could not deliver: the other replicas' at once
            await self.journal.release()
        # What this replica sent, per topic: beside the peers' counts, how many rows went out twice.
        log.info("outbox forwarders stopped", extra={"rows_sent": dict(self.rows_sent)})

    def wake(self, *topics: str) -> None:
        """New rows of these topics (every topic by default) are in the journal."""
        for topic in topics or self._ready:
            self._ready[topic].set()

    async def undelivered(self) -> int:
        """Rows not yet acknowledged by their peer, once what was delivered is forgotten."""
        await self._forget_delivered()
        return await self.journal.undelivered()

    def recent_sequence(self, payment_id: str) -> int:
        """The confirmation sequence acknowledged lately for the payment; 0 if none is known here."""
        return self._recent_sequences.get(payment_id, 0)

    async def confirmation_sequence(self, payment_id: str, timeout: float) -> int:
        """Waits (at most timeout) for the result's sequence on the confirmation stream; 0 if not yet."""
        if payment_id in self._recent_sequences:  # acknowledged before the caller asked
            return self._recent_sequences[payment_id]
        future = asyncio.get_running_loop().create_future()
        self._sequence_waiters.setdefault(payment_id, []).append(future)
        self._ready[CONFIRMATIONS].set()
        self._ready[CONFIRMATIONS_BATCH].set()
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

    async def sample(self) -> None:
        """The outbox's depth and the age of its oldest row, per peer and topic, for the gauges."""
        found = {topic: (rows, oldest) for topic, rows, oldest in await self.journal.outbox_figures()}
        now = time.time()
        depth, age = [], []
        for topic, peer in PEER_OF.items():
            rows, oldest = found.get(topic, (0, None))
            labels = {"peer": peer, "topic": topic}
            depth.append((rows, labels))
            # (a row written before queued_at existed reads 0: its age is unknown, not 56 years)
            age.append((round(max(now - oldest, 0.0), 3) if rows and oldest else 0.0, labels))
        self.figures.set("paymesh.outbox.depth", depth)
        self.figures.set("paymesh.outbox.oldest.age", age)

    async def replay_refused(self, keys: list[tuple[str, str]] | None) -> int:
        """Sends refused rows (topic, key), or all when keys is None, again; how many."""
        count = await self.journal.replay_refused(keys)
        self.refused_rows -= count
        for topic in self._streams:  # rows written past Journal.record: read them from the table
            self._forgotten[topic] += 1
        self.wake()
        return count

    def _on_written(self, topic: str, row: OutboxRow) -> None:
        written = self._written[topic]
        if len(written) >= WRITTEN_ROWS_HELD:  # behind a peer long away: read from the table again
            written.clear()
            self._forgotten[topic] += 1
        written.append(row)

    def _written_page(self, topic: str, after_id: int, limit: int) -> list[OutboxRow]:
        """The rows recorded after after_id (those up to it were read from the table), oldest first.
        They stay held until sent: the cursor passing them forgets them at the next page."""
        written = self._written[topic]
        while written and written[0][0] <= after_id:
            written.popleft()
        return list(itertools.islice(written, limit))

    async def _next_page(self, topic: str, after_id: int) -> list[OutboxRow]:
        """The topic's next rows to send: from what was recorded since, once caught up with the table;
        else from the table (a shared journal's claimed there, always)."""
        limit = PAGE_ROWS[topic]
        if self.journal.shared:
            return await self.journal.claim(topic, after_id=after_id, limit=limit)
        forgotten = self._forgotten[topic]
        if self._caught_up[topic] == forgotten:
            return self._written_page(topic, after_id, limit)
        rows = await self.journal.outbox(topic, after_id=after_id, limit=limit)
        # A page not full is all the table holds past the cursor; every row committed after this read
        # is told to _on_written (one writer: this process's commits and reads take turns on its thread).
        self._caught_up[topic] = forgotten if len(rows) < limit else None
        return rows

    async def _forward(self, topic: str) -> None:
        """Store-and-forward: sends the outbox in order. Pages go out one behind the other
        without waiting for the previous page's acknowledgements; a row is deleted once its
        peer acknowledged it (after a restart, everything left is sent again). On a shared journal
        the pages are claimed: a row left by a replica that stopped is found wherever it is once its
        lease lapses, so the cursor, which only moves forward, need only cover this replica's rows."""
        (stream, message_type), ready = self._streams[topic], self._ready[topic]
        last_id = 0
        deliveries: set[asyncio.Task] = set()
        while True:
            await wait_set(ready, 1.0)  # (at least once a second: a lapsed lease wakes no one)
            ready.clear()
            await asyncio.sleep(FORWARD_LINGER_SECONDS[topic])
            try:
                rows = await self._next_page(topic, last_id)
            except STORE_UNAVAILABLE as failed:  # (a database failover): the rows wait in the journal
                log.warning("outbox not read: the journal cannot be reached; trying again", extra={
                    "topic": topic, "error": type(failed).__name__})
                await asyncio.sleep(STORE_RETRY_SECONDS)
                ready.set()
                continue
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
                # (A row claimed here and not sent waits for its lease to lapse, for any replica;
                # with the claim's order rule a shared journal's page seldom starts so.)
                await asyncio.gather(*deliveries)
                continue
            rows, items = rows[:cut], items[:cut]
            last_id = rows[-1][0]
            self.rows_sent[topic] += len(rows)
            if self.journal.shared:
                self._claimed[topic].update((key, row_id) for row_id, key, _, _ in rows)
            delivery = asyncio.create_task(self._delivered(topic, rows, await stream.submit_many(items)))
            deliveries.add(delivery)
            delivery.add_done_callback(deliveries.discard)

    async def _delivered(self, topic: str, rows, answers: list[asyncio.Future]) -> None:
        acks = await asyncio.gather(*answers)
        refusals = [(row[1], ack.rejection.reason, ack.rejection.message)
                    for row, ack in zip(rows, acks) if _refused(topic, ack)]
        if refusals:
            # Never as if delivered: the row stays, marked, until an operator replays it.
            while True:
                try:
                    await self.journal.refuse(topic, refusals)
                    break
                except STORE_UNAVAILABLE:  # (a database failover): marked once the journal is back
                    await asyncio.sleep(STORE_RETRY_SECONDS)
            self.refused_rows += len(refusals)
            for key, reason, message in refusals:
                log.error("peer refused an outbox row; kept for the operator (paymesh outbox)", extra={
                    "topic": topic, "item_key": key, "reason": errors_pb2.ErrorReason.Name(reason),
                    "detail": message[:200]})
                telemetry.count_refused_delivery(topic, errors_pb2.ErrorReason.Name(reason))
            refused_keys = {key for key, _, _ in refusals}
            rows = [row for row in rows if row[1] not in refused_keys]
            for key in refused_keys:
                self._claimed[topic].pop(key, None)
        sequences = {a.payment_id: a.sequence for a in acks if a.sequence} if topic != POSTINGS else {}
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
            try:
                await self._forget_delivered()
            except STORE_UNAVAILABLE as failed:  # (a database failover): forgotten at a later sweep
                log.warning("delivered outbox rows not forgotten yet: the journal cannot be written", extra={
                    "error": type(failed).__name__})

    async def _forget_delivered(self) -> None:
        swept, self._delivered_keys = self._delivered_keys, []
        if not swept:
            return
        try:
            await self.journal.done(swept)
        except BaseException:
            # Still delivered, still claimed (renewed): forgotten by the next sweep that can write.
            self._delivered_keys[:0] = swept
            raise
        for topic, keys, _ in swept:  # not renewed any more
            for key in keys:
                self._claimed[topic].pop(key, None)
        if self.journal.shared:
            # A payment's later row (its reversal) waited for the one just deleted: claimable now.
            self.wake(*{topic for topic, _, _ in swept})

    async def _renew_claims(self) -> None:
        """Every RENEW_SECONDS, one statement extends this replica's claims on the rows it sent and
        has not yet swept, however slow their peer: none is sent by another replica meanwhile."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            ids = [row_id for claimed in self._claimed.values() for row_id in claimed.values()]
            if not ids:
                continue
            try:
                await self.journal.renew(ids)
            except STORE_UNAVAILABLE:  # the journal is away: the next renewal tries again, within the lease
                log.warning("outbox claims not renewed", exc_info=True, extra={"rows": len(ids)})



def _refused(topic: str, ack) -> bool:
    """Whether the peer's answer refuses the row (the bridge: REJECTED; confirmations: a rejection)."""
    if topic == POSTINGS:
        return ack.status == ledger_pb2.POSTING_STATUS_REJECTED
    return ack.HasField("rejection") and ack.rejection.reason != 0
