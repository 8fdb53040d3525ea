"""Store-and-forward: sends QUEUED postings to the mainframe, in order, over one
TLS connection with a window of records in flight, and records each answer.

On any fault (refused connection, a dropped link, a garbled or truncated reply)
the link is closed and reopened with backoff; every posting still QUEUED is sent
again from the oldest. The mainframe answers a replayed posting id as it did the
first time, so a resend never posts twice.
"""

import asyncio
import logging
import ssl

from bank.common.v1 import errors_pb2
from mainframe_bridge import queue_store, records
from mainframe_bridge.codec import RecordError
from mainframe_bridge.framing import FrameError, FrameReader, encode_frame
from mainframe_bridge.link import open_link
from mainframe_bridge.queue_store import POSTED, REJECTED, Standing
from paymesh.sqlite import Store

WINDOW = 2000  # records in flight on the link
FETCH = 1000  # queued postings read from the store at a time
MIN_BACKOFF, MAX_BACKOFF = 0.05, 1.0
LINK_FAULTS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, FrameError, RecordError,
               UnicodeDecodeError, ssl.SSLError)
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
    def __init__(self, store: Store, address: str, context: ssl.SSLContext, window: int = WINDOW):
        self.store = store
        self.address = address
        self.context = context
        self.window = window
        self.connected = False
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """New postings were queued."""
        self._wake.set()

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
                try:
                    settled = await self._session(reader, writer)
                except (*LINK_FAULTS, LinkFault) as fault:
                    log.warning("mainframe link lost", extra={"error": type(fault).__name__, "detail": str(fault)})
                finally:
                    self.connected = False
                    writer.close()
            backoff = MIN_BACKOFF if settled else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(backoff)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        in_flight: dict[str, int] = {}  # posting id -> seq, in send order
        slots = asyncio.Semaphore(self.window)
        answered: list[tuple[int, Standing]] = []  # (seq, where it now stands)
        have_answers = asyncio.Event()
        settled = 0

        async def send() -> None:
            cursor = 0
            while True:
                self._wake.clear()
                rows = await self.store.run(queue_store.next_queued, cursor, FETCH)
                if not rows:
                    await self._wake.wait()
                    continue
                frames = []
                for seq, posting_id, frame in rows:
                    if slots.locked() and frames:  # window full: put out what is ready, then wait
                        writer.write(b"".join(frames))
                        frames = []
                    await slots.acquire()
                    in_flight[posting_id] = seq
                    frames.append(encode_frame(frame))
                    cursor = seq
                writer.write(b"".join(frames))  # one write (one TLS record run) for many frames
                await writer.drain()

        async def receive() -> None:
            frames = FrameReader(reader)
            while True:
                for frame in await frames.read():
                    reply = records.decode_reply(frame)
                    seq = in_flight.pop(reply.posting_id, None)
                    if seq is None:
                        raise LinkFault(f"a reply for posting {reply.posting_id!r}, which is not in flight")
                    answered.append((seq, standing_of(reply)))
                have_answers.set()

        async def commit() -> None:
            nonlocal settled
            while True:
                await have_answers.wait()
                have_answers.clear()
                await flush()

        async def flush() -> None:
            nonlocal settled
            batch = answered[:]
            del answered[:len(batch)]
            if batch:
                # Group commit: one transaction for every answer that arrived meanwhile.
                await self.store.transaction(queue_store.settle, batch)
                settled += len(batch)
                for _ in batch:
                    slots.release()

        tasks = [asyncio.create_task(job()) for job in (send, receive, commit)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await flush()  # answers already read are final: keep them
        return settled
