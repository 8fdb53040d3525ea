"""Store-and-forward: sends QUEUED postings to the mainframe, in order, over one
TLS connection with a window of records in flight, and records each answer.

On any fault (refused connection, a dropped link, a garbled or truncated reply, the
queue's store failing: its PostgreSQL server lost, say) the link is closed and reopened
with backoff; every posting still QUEUED is sent again from the oldest. The mainframe
answers a replayed posting id as it did the first time, so a resend never posts twice.
"""

import asyncio
import logging
import ssl
from collections import Counter

from bank.common.v1 import errors_pb2
from mainframe_bridge import queue_store, records
from mainframe_bridge.codec import RecordError
from mainframe_bridge.framing import FrameError, FrameReader, encode_frame
from mainframe_bridge.link import open_link
from mainframe_bridge.queue_store import POSTED, REJECTED, QueueStore, Standing
from paymesh import telemetry
from paymesh.errors import reason_name
from paymesh.group_commit import GroupCommit
from paymesh.postgres import STORE_FAILURES, DatabaseUnavailable

WINDOW = 2000  # records in flight on the link
FETCH = 1000  # queued postings read from the store at a time
MIN_BACKOFF, MAX_BACKOFF = 0.05, 1.0
LINK_FAULTS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, FrameError, RecordError,
               UnicodeDecodeError, ssl.SSLError)


class AnswerNotRecorded(Exception):
    """The store could not record an answer of the mainframe (its database lost, the lease lost)."""


# The queue's store failing under the session (its database lost, a failover): the session ends as for
# a link fault, and the next one reads the queue again from the oldest QUEUED (on the new primary).
STORE_FAULTS: tuple[type[Exception], ...] = (*STORE_FAILURES, DatabaseUnavailable, AnswerNotRecorded)
_REASONS = {
    records.RC_UNBALANCED: errors_pb2.ERROR_REASON_UNBALANCED_MOVEMENT,
    records.RC_UNKNOWN_ACCOUNT: errors_pb2.ERROR_REASON_UNKNOWN_ACCOUNT,
    records.RC_DAY_CLOSED: errors_pb2.ERROR_REASON_BUSINESS_DAY_CLOSED,
}
log = logging.getLogger(__name__)


class LinkFault(Exception):
    """The mainframe said something that does not fit the conversation."""


def standing_of(reply: records.Reply) -> Standing:
    if reply.return_code == records.RC_OK:
        return Standing(POSTED, reference=reply.reference)
    reason = _REASONS.get(reply.return_code, errors_pb2.ERROR_REASON_MAINFRAME_REFUSED)
    return Standing(REJECTED, rejection_reason=reason,
                    rejection_message=f"mainframe return code {reply.return_code:04d}: {reply.message}")


class Forwarder:
    def __init__(self, store: QueueStore, address: str, context: ssl.SSLContext, window: int = WINDOW):
        self.store = store
        self.address = address
        self.context = context
        self.window = window
        self.connected = False
        self.queued = asyncio.Event()  # set when new postings are queued
        # Group commit: one transaction records every answer that arrived while the last one committed.
        self.answers: GroupCommit[tuple[int, Standing], None] = GroupCommit(store, queue_store.settle,
                                                                           name="mainframe-answers")

    def notify(self) -> None:
        """New postings were queued."""
        self.queued.set()

    async def close(self) -> None:
        """Records the answers already read (they are final), then stops."""
        await self.answers.close()

    async def run(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            settled = 0
            try:
                reader, writer = await open_link(self.address, self.context)
            except LINK_FAULTS as fault:
                log.warning("mainframe unreachable", extra={"error": type(fault).__name__, "retry_s": backoff})
            else:
                self.connected = True
                log.info("mainframe link open")
                session = Session(self, reader, writer)
                try:
                    await session.run()
                except (*LINK_FAULTS, LinkFault) as fault:
                    log.warning("mainframe link lost", extra={"error": type(fault).__name__, "detail": str(fault)})
                except STORE_FAULTS as fault:
                    log.warning("the queue's store failed: link closed, the queue read again from the oldest QUEUED",
                                extra={"error": type(fault).__name__, "detail": str(fault).strip()[:300]})
                finally:
                    self.connected = False
                    writer.close()
                settled = session.settled
            backoff = MIN_BACKOFF if settled else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(backoff)


class Session:
    """One open link: queued postings go out in order within the window of records in flight
    (a slot comes back once the posting's answer is recorded), answers come in as they come."""

    def __init__(self, forwarder: Forwarder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.forwarder = forwarder
        self.reader, self.writer = reader, writer
        self.in_flight: dict[str, int] = {}  # posting id -> seq, in send order
        self.slots = asyncio.Semaphore(forwarder.window)
        self.settled = 0  # answers recorded
        # An answer the store could not record (its database lost): the session ends with it, so that
        # the next one sends that posting again (the cursor of this one has passed it).
        self.record_failed: asyncio.Future = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        """Until the link fails, or an answer cannot be recorded (raises the fault)."""
        tasks = [asyncio.create_task(job()) for job in (self._send, self._receive)]
        try:
            done, _ = await asyncio.wait([*tasks, self.record_failed], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.record_failed.done():
                self.record_failed.exception()  # (seen: no "never retrieved" warning)
            else:
                self.record_failed.cancel()

    async def _send(self) -> None:
        store, wake, cursor = self.forwarder.store, self.forwarder.queued, 0
        while True:
            wake.clear()
            rows = await store.run(queue_store.next_queued, cursor, FETCH)
            if not rows:
                await wake.wait()
                continue
            frames: list[bytes] = []
            for seq, posting_id, frame in rows:
                if self.slots.locked() and frames:  # window full: put out what is ready, then wait
                    self.writer.write(b"".join(frames))
                    frames = []
                await self.slots.acquire()
                self.in_flight[posting_id] = seq
                frames.append(encode_frame(frame))
                cursor = seq
            self.writer.write(b"".join(frames))  # one write (one TLS record run) for many frames
            await self.writer.drain()

    async def _receive(self) -> None:
        frames = FrameReader(self.reader)
        while True:
            posted, rejected = 0, Counter[errors_pb2.ErrorReason]()  # counted once per read, not per answer
            for frame in await frames.read():
                reply = records.decode_reply(frame)
                seq = self.in_flight.pop(reply.posting_id, None)
                if seq is None:
                    raise LinkFault(f"a reply for posting {reply.posting_id!r}, which is not in flight")
                standing = standing_of(reply)
                if standing.status == POSTED:
                    posted += 1
                else:
                    rejected[standing.rejection_reason] += 1
                self.forwarder.answers.submit((seq, standing)).add_done_callback(self._recorded)
            if posted:
                telemetry.count_mainframe_answers("posted", "", posted)
            for reason, count in rejected.items():
                telemetry.count_mainframe_answers("rejected", reason_name(reason), count)

    def _recorded(self, answer: asyncio.Future) -> None:
        # A failed record leaves the posting QUEUED: the session ends, the next link sends it again
        # and the mainframe answers it as the first time.
        self.slots.release()
        if answer.cancelled():
            return
        error = answer.exception()
        if error is None:
            self.settled += 1
        elif not self.record_failed.done():
            self.record_failed.set_exception(AnswerNotRecorded(f"{type(error).__name__}: {error}"))
