"""The client side of the mainframe link: TLS with the caller's mesh certificate,
and the operator's control record to steer the emulator."""

import asyncio
import ssl
from pathlib import Path

from mainframe_bridge import records
from mainframe_bridge.framing import encode_frame, read_frame
from paymesh import tls
from paymesh.topology import EMULATOR_CONTROL, Identity


def client_context(pki_dir: Path, identity: Identity) -> ssl.SSLContext:
    """The link's TLS context; it takes renewed certificate files before each new connection."""
    return tls.ssl_client_context(pki_dir, identity)


async def open_link(address: str, context: ssl.SSLContext, timeout: float = 5.0):
    if isinstance(context, tls.ReloadingSSLContext):
        context.refresh()
    host, port = address.rsplit(":", 1)
    async with asyncio.timeout(timeout):  # (not asyncio.wait_for: paymesh.aio.wait_set says why)
        return await asyncio.open_connection(host, int(port), ssl=context)


async def set_emulator_mode(address: str, pki_dir: Path, mode: str, delay_ms: int = 0, timeout: float = 5.0) -> str:
    """Sends a control record as the emulator's controller; returns the emulator's answer."""
    reader, writer = await open_link(address, client_context(pki_dir, EMULATOR_CONTROL), timeout)
    try:
        writer.write(encode_frame(records.encode_control(mode, delay_ms)))
        await writer.drain()
        async with asyncio.timeout(timeout):
            answer = records.CONTROL_REPLY.decode(await read_frame(reader))
        return f"{answer['CA-MODE']}: {answer['CA-MESSAGE']}"
    finally:
        writer.close()
