"""An emulator of the bank's mainframe general ledger, for local runs and tests.

A TCP server speaking TLS 1.2+ with a required client certificate from the
mesh's CA; only the bridge and the operator may connect. Records are framed as
mainframe_bridge.framing says and laid out as copybooks/glpost.cpy says.

It posts each posting record to a double-entry ledger in its own SQLite file
(mainframe-emulator.db), refuses unbalanced movements and unknown accounts,
answers a replayed posting id as the first time, and checks the end-of-day
file's record counts, hash total and control totals against its details and
its own ledger. A day it accepted a file for is closed: no new postings, no
other file (the same file again gets the same answer). It shows its book, a
day at a time, to a BOOK-INQUIRY.

For tests it can misbehave, chosen at start (--mode / PAYMESH_EMULATOR_MODE,
--delay-ms / PAYMESH_EMULATOR_DELAY_MS) or by a CONTROL-REQUEST record from the
operator: NORMAL, DOWN (drops the bridge's connections), SLOW (waits delay-ms
before answering each batch), GARBAGE (posts, then answers bytes that are no
record), TRUNCATE (posts, then sends half a reply frame and hangs up).
"""

import argparse
import asyncio
import hashlib
import logging
import os
import ssl
import sys

from mainframe_bridge import eod_file, records

from mainframe_emulator import general_ledger
from mainframe_bridge.codec import RecordError
from mainframe_bridge.framing import PING, PONG, FrameError, FrameReader, encode_frame
from paymesh import tls
from paymesh.config import Settings, port_of
from paymesh.logs import setup_logging
from paymesh.server import until_signalled, write_port_file
from paymesh.sqlite import Store
from paymesh.topology import BRIDGE, EMULATOR_CONTROL, PROBE, SERVICES, Identity

SERVICE = "mainframe-emulator"
# Who may connect: the bridge (postings, the end-of-day file, the book), the probe (PING only) and
# the controller (CONTROL records and PING). Only the bridge posts to the ledger.
ALLOWED = frozenset([BRIDGE, PROBE, EMULATOR_CONTROL])
KEEP_WHEN_DOWN = frozenset([PROBE, EMULATOR_CONTROL])
MODES = ("NORMAL", "DOWN", "SLOW", "GARBAGE", "TRUNCATE")
MAX_BATCH = 1000  # postings per group commit (about: whole reads are taken)
INBOX_READS = 16  # reads of frames waiting for the committer, each at most FrameReader.CHUNK bytes
_POSTING = records.HEADER.record_type
_EOD_HEADER = records.EOD_HEADER.record_type
_BOOK_INQUIRY = records.BOOK_INQUIRY.record_type
log = logging.getLogger(__name__)


def tls_context(settings: Settings) -> tls.ReloadingSSLContext:
    return tls.ssl_server_context(settings.pki_dir, SERVICES[SERVICE].identity)


async def follow_certificate(context: tls.ReloadingSSLContext) -> None:
    """Loads renewed certificate files into the listening context (asyncio's server makes each
    connection from it when accepted), so new connections present the new certificate."""
    while True:
        await asyncio.sleep(tls.CertificateFiles.CHECK_SECONDS)
        context.refresh()


def peer_of(writer: asyncio.StreamWriter, revocations: tls.RevocationList | None = None) -> Identity | None:
    cert = writer.get_extra_info("peercert") or {}
    if revocations is not None and revocations.is_revoked(int(cert.get("serialNumber", "0"), 16)):
        return None
    uris = [value for kind, value in cert.get("subjectAltName", ()) if kind == "URI"]
    identities = [i for i in map(Identity.parse, uris) if i is not None]
    return identities[0] if len(identities) == 1 else None


class HangUp(Exception):
    """The emulator was told to cut this connection."""


class Emulator:
    def __init__(self, store: Store, mode: str = "NORMAL", delay_ms: int = 0,
                 revocations: tls.RevocationList | None = None) -> None:
        self.revocations = revocations
        self.store = store
        self.mode = mode
        self.delay_ms = delay_ms
        self.connections: dict[asyncio.Task, Identity | None] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None, "a connection's handler runs as a task"
        peer = peer_of(writer, self.revocations)
        if peer not in ALLOWED or (self.mode == "DOWN" and peer not in KEEP_WHEN_DOWN):
            log.warning("refused connection", extra={"peer": str(peer), "mode": self.mode})
            writer.close()
            return
        self.connections[task] = peer
        # Frames are read (a batch at a time) while earlier ones are being committed, so a busy
        # connection commits many postings per transaction.
        inbox: asyncio.Queue[list[bytes]] = asyncio.Queue(maxsize=INBOX_READS)
        worker = asyncio.create_task(self.work(inbox, writer, peer))
        # A worker that stops (a hang-up it was told to do, a broken writer) stops the reading too.
        worker.add_done_callback(lambda _: task.cancel())
        try:
            try:
                frames = FrameReader(reader)
                while True:
                    await inbox.put(await frames.read())
            except asyncio.CancelledError:
                if not worker.done() or worker.cancelled():
                    # Shutdown, or told to go DOWN: end quietly (asyncio logs a connection
                    # handler that ends cancelled as an error).
                    log.info("connection cut", extra={"peer": str(peer), "mode": self.mode})
                    return
                worker.result()
        except (asyncio.IncompleteReadError, ConnectionError, FrameError, ssl.SSLError, HangUp) as gone:
            log.info("connection closed", extra={"peer": str(peer), "reason": type(gone).__name__})
        except Exception:  # a bug must not pass silently, nor take the emulator down
            log.exception("connection failed", extra={"peer": str(peer)})
        finally:
            worker.cancel()
            self.connections.pop(task, None)
            writer.close()

    async def work(self, inbox: asyncio.Queue, writer: asyncio.StreamWriter, peer: Identity | None) -> None:
        eod_data: bytearray | None = None  # an end-of-day file being received
        while True:
            frames = await inbox.get()
            while not inbox.empty() and len(frames) < MAX_BATCH:
                frames += inbox.get_nowait()
            postings: list[records.PostingRecord] = []
            answers: list[bytes] = []
            for frame in frames:
                kind = frame[:4]
                if peer != BRIDGE and (eod_data is not None or kind in (_EOD_HEADER, _BOOK_INQUIRY, _POSTING)):
                    answers.append(self.not_allowed(frame, peer))
                elif eod_data is not None or kind == _EOD_HEADER:
                    eod_data = (eod_data or bytearray()) + frame
                    if eod_file.is_last_record(eod_data):
                        # The postings before it on this link are in the ledger before the file is checked.
                        answers = await self.post(postings, answers)
                        postings = []
                        answers.append(await self.receive_eod(bytes(eod_data)))
                        eod_data = None
                elif kind == _BOOK_INQUIRY:
                    answers = await self.post(postings, answers)  # the book shows what came before the inquiry
                    postings = []
                    answers.append(await self.book_page(frame))
                elif kind == _POSTING:
                    posting = self.decode(frame)
                    if isinstance(posting, bytes):
                        answers.append(posting)
                    else:
                        postings.append(posting)
                        answers.append(b"")  # filled in after the commit, in order
                else:
                    answers.append(self.answer_other(frame, records.record_type(frame), peer))
            await self.send(writer, await self.post(postings, answers))

    async def post(self, postings: list[records.PostingRecord], answers: list[bytes]) -> list[bytes]:
        """Posts in one transaction; the answers with each posting's empty place filled by its reply."""
        if not postings:
            return answers
        replies = iter(await self.store.transaction(general_ledger.post_batch, postings))
        return [a or records.encode_reply(next(replies)) for a in answers]

    def decode(self, frame: bytes) -> records.PostingRecord | bytes:
        try:
            return records.decode_posting(frame)
        except (RecordError, UnicodeDecodeError) as bad:
            posting_id = ""
            try:
                posting_id = records.HEADER.decode(frame)["PH-POSTING-ID"]
            except (RecordError, UnicodeDecodeError):
                pass
            return records.encode_reply(records.Reply(posting_id, records.RC_MALFORMED, "", str(bad)[:80]))

    def not_allowed(self, frame: bytes, peer: Identity | None) -> bytes:
        """A posting, a file or an inquiry from anyone but the bridge: refused, nothing written."""
        log.warning("ledger record from an identity that may not send it", extra={"peer": str(peer)})
        posting_id = ""
        if frame[:4] == _POSTING:
            try:
                posting_id = records.HEADER.decode(frame)["PH-POSTING-ID"]
            except (RecordError, UnicodeDecodeError):
                pass
        return records.encode_reply(records.Reply(posting_id, records.RC_NOT_ALLOWED, "",
                                                  "only the bridge may send ledger records"))

    def answer_other(self, frame: bytes, kind: str, peer: Identity | None) -> bytes:
        if frame == PING:  # the link check: a mainframe told to be down is not serving
            return PONG if self.mode != "DOWN" else "DOWN".encode(records.CODEC)
        if kind == "CTRL":
            return self.control(frame, peer)
        return f"ERR record type {kind!r} is not supported".encode(records.CODEC)

    def control(self, frame: bytes, peer: Identity | None) -> bytes:
        try:
            request = records.CONTROL.decode(frame)
        except (RecordError, UnicodeDecodeError) as bad:
            return records.CONTROL_REPLY.encode({"CA-MODE": self.mode, "CA-MESSAGE": str(bad)[:80]})
        if peer != EMULATOR_CONTROL:
            message = "refused: only the controller identity controls the emulator"
        elif request["CR-MODE"] not in MODES:
            message = f"unknown mode; one of {', '.join(MODES)}"
        else:
            self.set_mode(request["CR-MODE"], request["CR-DELAY-MS"])
            message = "mode set"
        return records.CONTROL_REPLY.encode({"CA-MODE": self.mode, "CA-MESSAGE": message})

    def set_mode(self, mode: str, delay_ms: int) -> None:
        self.mode, self.delay_ms = mode, delay_ms
        log.info("mode set", extra={"mode": mode, "delay_ms": delay_ms})
        if mode == "DOWN":
            for task, peer in list(self.connections.items()):
                if peer not in KEEP_WHEN_DOWN:
                    task.cancel()

    async def send(self, writer: asyncio.StreamWriter, answers: list[bytes]) -> None:
        if self.mode == "SLOW":
            await asyncio.sleep(self.delay_ms / 1000)
        if self.mode not in ("GARBAGE", "TRUNCATE"):
            writer.write(b"".join(map(encode_frame, answers)))  # one write for the batch
            await writer.drain()
            return
        frames: list[bytes] = []
        for answer in answers:
            is_reply = records.record_type(answer) == "RPLY"
            if is_reply and self.mode == "GARBAGE":
                answer = bytes(range(256))[: len(answer)]
            if is_reply and self.mode == "TRUNCATE":
                writer.write(b"".join(frames) + encode_frame(answer)[: 4 + len(answer) // 2])
                await writer.drain()
                raise HangUp()
            frames.append(encode_frame(answer))
        writer.write(b"".join(frames))  # one write for the batch
        await writer.drain()

    async def receive_eod(self, data: bytes) -> bytes:
        try:
            eod = eod_file.read(data)
        except (RecordError, UnicodeDecodeError) as bad:
            return records.EOD_REPLY.encode({"ER-RETURN-CODE": records.RC_MALFORMED, "ER-MESSAGE": str(bad)[:80]})
        return_code, message, count = await self.store.transaction(
            general_ledger.take_eod_file, eod, hashlib.sha256(data).digest())
        log.info("end-of-day file", extra={"file": eod.file_name, "records": count, "rc": return_code})
        return records.EOD_REPLY.encode({
            "ER-BUSINESS-DATE": eod.business_date, "ER-RETURN-CODE": return_code,
            "ER-RECORD-COUNT": count, "ER-MESSAGE": message[:80],
        })

    async def book_page(self, frame: bytes) -> bytes:
        """One page of the day's book: as many entries as a frame holds, after the inquiry's position."""
        try:
            inquiry = records.BOOK_INQUIRY.decode(frame)
            if len(frame) != records.BOOK_INQUIRY.size:
                raise RecordError(f"book inquiry of {len(frame)} bytes, expected {records.BOOK_INQUIRY.size}")
        except (RecordError, UnicodeDecodeError) as bad:
            return records.encode_book_page(records.BookPage(0, records.RC_MALFORMED, [], False, 0, 0, str(bad)))
        date, after = inquiry["BQ-BUSINESS-DATE"], (inquiry["BQ-AFTER-SEQ"], inquiry["BQ-AFTER-LINE"])
        items, more = await self.store.run(general_ledger.book_page, date, after, records.BOOK_ITEMS_PER_PAGE)
        last_seq, last_line = (items[-1].seq, items[-1].line) if items else after
        return records.encode_book_page(records.BookPage(date, records.RC_OK, items, more, last_seq, last_line,
                                                         "book page"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mainframe_emulator")
    parser.add_argument("--mode", choices=MODES, type=str.upper,
                        default=os.environ.get("PAYMESH_EMULATOR_MODE", "NORMAL").upper())
    parser.add_argument("--delay-ms", type=int, default=int(os.environ.get("PAYMESH_EMULATOR_DELAY_MS", "200")))
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    setup_logging(SERVICE, settings.log_level)
    store = Store(settings.data_dir / f"{SERVICE}.db", general_ledger.SCHEMA, general_ledger.ADDED_COLUMNS)
    emulator = Emulator(store, args.mode, args.delay_ms, tls.RevocationList.from_env(settings.pki_dir))
    context = tls_context(settings)
    server = await asyncio.start_server(emulator.handle, settings.bind_host, port_of(SERVICES[SERVICE]), ssl=context)
    following = asyncio.create_task(follow_certificate(context))
    port = server.sockets[0].getsockname()[1]
    write_port_file(settings, SERVICE, port)
    log.info("serving", extra={"port": port, "mode": args.mode})
    await until_signalled()
    following.cancel()
    server.close()
    # A posting is answered only after its commit, so cutting a connection loses
    # nothing the bridge was told: it resends what got no reply.
    for connection in list(emulator.connections):
        connection.cancel()
    if emulator.connections:
        await asyncio.wait(list(emulator.connections), timeout=settings.grace_seconds)
    store.close()
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.mode not in MODES:
        print(f"{SERVICE}: --mode must be one of {', '.join(MODES)}", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(serve(args))
    except FileNotFoundError as missing:
        print(f"{SERVICE}: {missing}; run `paymesh pki` first", file=sys.stderr)
        sys.exit(2)
