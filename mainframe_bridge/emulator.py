"""An emulator of the bank's mainframe general ledger, for local runs and tests.

A TCP server speaking TLS 1.2+ with a required client certificate from the
mesh's CA; only the bridge (and the operator) may connect. Records are framed
as mainframe_bridge.framing says. Posting records land with the bridge issue;
today it answers the link check and refuses other record types in words.
"""

import asyncio
import logging
import ssl
import sys

from paymesh import pki
from paymesh.config import Settings, port_of
from paymesh.logs import setup_logging
from paymesh.server import until_signalled, write_port_file
from paymesh.topology import BRIDGE, OPERATOR, SERVICES, Identity
from mainframe_bridge.framing import CODEC, PING, PONG, FrameError, encode_frame, read_frame

SERVICE = "mainframe-emulator"
ALLOWED = frozenset([BRIDGE, OPERATOR])
log = logging.getLogger(__name__)


def tls_context(settings: Settings) -> ssl.SSLContext:
    identity = SERVICES[SERVICE].identity
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_path(settings.pki_dir)))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki.cert_path(settings.pki_dir, identity), pki.key_path(settings.pki_dir, identity))
    return context


def peer_of(writer: asyncio.StreamWriter) -> Identity | None:
    cert = writer.get_extra_info("peercert") or {}
    uris = [value for kind, value in cert.get("subjectAltName", ()) if kind == "URI"]
    identities = [i for i in map(Identity.parse, uris) if i is not None]
    return identities[0] if len(identities) == 1 else None


class Emulator:
    def __init__(self) -> None:
        self.connections: set[asyncio.Task] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        peer = peer_of(writer)
        try:
            if peer not in ALLOWED:
                log.warning("refused connection", extra={"peer": str(peer)})
                return
            while True:
                record = await read_frame(reader)
                writer.write(encode_frame(self.answer(record)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, FrameError, ssl.SSLError) as gone:
            log.info("connection closed", extra={"peer": str(peer), "reason": type(gone).__name__})
        finally:
            self.connections.discard(task)
            writer.close()

    def answer(self, record: bytes) -> bytes:
        if record == PING:
            return PONG
        kind = record[:4].decode(CODEC, errors="replace")
        return f"ERR record type {kind!r} is not supported".encode(CODEC)


async def serve() -> None:
    settings = Settings.from_env()
    setup_logging(SERVICE, settings.log_level)
    emulator = Emulator()
    server = await asyncio.start_server(
        emulator.handle, settings.bind_host, port_of(SERVICES[SERVICE]), ssl=tls_context(settings)
    )
    port = server.sockets[0].getsockname()[1]
    write_port_file(settings, SERVICE, port)
    log.info("serving", extra={"port": port})
    await until_signalled()
    server.close()
    # Every record is answered as soon as it is read, so a connection idles in a
    # read; cutting it loses nothing the bridge was told (it resends what got no reply).
    for connection in list(emulator.connections):
        connection.cancel()
    if emulator.connections:
        await asyncio.wait(emulator.connections, timeout=settings.grace_seconds)
    log.info("stopped")


def main() -> None:
    try:
        asyncio.run(serve())
    except FileNotFoundError as missing:
        print(f"{SERVICE}: {missing}; run `paymesh pki` first", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
