"""The mainframe link's framing: each record travels as a 4-byte big-endian
unsigned length followed by that many bytes (EBCDIC, code page 037).

A record starts with a 4-character record type; PING/PONG is the link check.
"""

import asyncio
import struct

CODEC = "cp037"
MAX_FRAME = 64 * 1024
_LENGTH = struct.Struct(">I")

PING = "PING".encode(CODEC)
PONG = "PONG".encode(CODEC)


class FrameError(Exception):
    """The peer sent something that is not a well-formed frame."""


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length == 0 or length > MAX_FRAME:
        raise FrameError(f"frame length {length} outside 1..{MAX_FRAME}")
    return await reader.readexactly(length)


def encode_frame(payload: bytes) -> bytes:
    if not 0 < len(payload) <= MAX_FRAME:
        raise FrameError(f"frame length {len(payload)} outside 1..{MAX_FRAME}")
    return _LENGTH.pack(len(payload)) + payload
