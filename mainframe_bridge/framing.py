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


class FrameReader:
    """Reads frames a batch at a time: every whole frame already received, at least one.

    A busy link carries thousands of small frames a second; taking them all from each chunk the
    socket gives, rather than two awaited reads per frame, keeps the event loop's work per batch."""

    CHUNK = 256 * 1024

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader
        self._buffer = bytearray()

    async def read(self) -> list[bytes]:
        """The next frames, in order; IncompleteReadError at the end of the stream (even mid-frame),
        FrameError once the frames before a bad length have been returned."""
        while True:
            frames = self._take()
            if frames:
                return frames
            chunk = await self._reader.read(self.CHUNK)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self._buffer), None)
            self._buffer += chunk

    def _take(self) -> list[bytes]:
        buffer, start = self._buffer, 0
        frames: list[bytes] = []
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length == 0 or length > MAX_FRAME:
                if frames:
                    break  # the good frames first; the bad length is raised on the next read
                raise FrameError(f"frame length {length} outside 1..{MAX_FRAME}")
            end = start + _LENGTH.size + length
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start + _LENGTH.size:end]))
            start = end
        del buffer[:start]
        return frames


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
