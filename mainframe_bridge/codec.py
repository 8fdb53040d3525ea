"""Encodes and decodes fixed-width EBCDIC records from a copybook layout.

A record's values are a dict keyed by the copybook's names (FILLER omitted);
an OCCURS group is a list of such dicts. Text is cp037, left-justified and
space-filled; zoned numbers are cp037 digits; packed numbers are COMP-3 with a
C (plus) or D (minus) sign nibble. Decoding checks every byte it reads, so a
garbled record is refused, never misread.
"""

from mainframe_bridge.copybook import PACKED, TEXT, ZONED, Group, Item

CODEC = "cp037"


class RecordError(ValueError):
    """Bytes that are not a valid record, or values that do not fit one."""


class RecordCodec:
    def __init__(self, layout: Group):
        self.name = layout.name
        self.layout = layout
        self.size = layout.size
        first = layout.children[0]
        self.record_type = first.value.encode(CODEC) if isinstance(first, Item) and first.value else None

    def item(self, name: str) -> Item:
        """The elementary item called name (for its width, say)."""
        groups = [self.layout]
        while groups:
            for child in groups.pop().children:
                if isinstance(child, Group):
                    groups.append(child)
                elif child.name == name:
                    return child
        raise KeyError(f"{self.name} has no item {name}")

    def encode(self, values: dict) -> bytes:
        out: list[bytes] = []
        _encode_group(self.layout.children, values, out)
        return b"".join(out)

    def decode(self, data: bytes | memoryview, offset: int = 0) -> dict:
        if len(data) - offset < self.size:
            raise RecordError(f"{self.name}: {len(data) - offset} bytes, a record needs {self.size}")
        raw = bytes(data[offset:offset + self.size])
        values: dict = {}
        # cp037 is one character per byte, so the text of the whole record is sliced by the same offsets.
        _decode_group(self.layout.children, raw, raw.decode(CODEC), 0, values)
        return values


def _encode_group(children, values: dict, out: list[bytes]) -> None:
    # Runs of text and zoned items are encoded to EBCDIC in one call: it is the hot path.
    run: list[str] = []
    for child in children:
        if isinstance(child, Group):
            _flush(run, children, out)
            rows = values.get(child.name, [])
            if len(rows) > child.occurs:
                raise RecordError(f"{child.name}: {len(rows)} occurrences, at most {child.occurs}")
            for index in range(child.occurs):
                _encode_group(child.children, rows[index] if index < len(rows) else {}, out)
        elif child.kind == PACKED:
            _flush(run, children, out)
            out.append(_packed(child, values.get(child.name, child.value)))
        elif child.kind == TEXT:
            run.append(_text(child, child.value if child.filler else values.get(child.name, child.value)))
        else:
            run.append(_zoned(child, values.get(child.name, child.value)))
    _flush(run, children, out)


def _flush(run: list[str], children, out: list[bytes]) -> None:
    if not run:
        return
    text = "".join(run)
    run.clear()
    try:
        out.append(text.encode(CODEC))
    except UnicodeEncodeError as bad:
        raise RecordError(f"character {bad.object[bad.start]!r} has no EBCDIC form") from None


def _decode_group(children, raw: bytes, text: str, offset: int, values: dict) -> int:
    for child in children:
        if isinstance(child, Group):
            rows = []
            for _ in range(child.occurs):
                row: dict = {}
                offset = _decode_group(child.children, raw, text, offset, row)
                rows.append(row)
            values[child.name] = rows
            continue
        end = offset + child.size
        if child.filler:
            offset = end
            continue
        if child.kind == TEXT:
            value = text[offset:end].rstrip(" ")
        elif child.kind == ZONED:
            value = _read_zoned(child, text[offset:end])
        else:
            value = _read_packed(child, raw[offset:end])
        offset = end
        if child.value is not None and value != child.value:
            raise RecordError(f"{child.name} is {value!r}, expected {child.value!r}")
        if child.conditions and value not in child.conditions.values():
            raise RecordError(f"{child.name} is {value!r}, expected one of {sorted(child.conditions.values())}")
        values[child.name] = value
    return offset


def _text(item: Item, value) -> str:
    text = "" if value is None else str(value)
    if len(text) > item.digits:
        raise RecordError(f"{item.name}: {len(text)} characters, at most {item.digits}")
    return text.ljust(item.digits)


def _zoned(item: Item, value) -> str:
    number = _integer(item, value)
    if not 0 <= number < 10 ** item.digits:
        raise RecordError(f"{item.name}: {number} does not fit PIC 9({item.digits})")
    return str(number).zfill(item.digits)


def _packed(item: Item, value) -> bytes:
    number = _integer(item, value)
    if abs(number) >= 10 ** item.digits:
        raise RecordError(f"{item.name}: {number} does not fit PIC S9({item.digits}) COMP-3")
    # digits + sign nibble fill whole bytes: pad to an odd digit count.
    width = item.size * 2 - 1
    return bytes.fromhex(str(abs(number)).zfill(width) + ("d" if number < 0 else "c"))


def _integer(item: Item, value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{item.name}: {value!r} is not an integer")
    return value


def _read_zoned(item: Item, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise RecordError(f"{item.name}: {text.encode(CODEC).hex()} is not zoned decimal")
    return int(text)


def _read_packed(item: Item, raw: bytes) -> int:
    nibbles = raw.hex()
    digits, sign = nibbles[:-1], nibbles[-1]
    if not digits.isdigit() or sign not in "cdf":
        raise RecordError(f"{item.name}: {nibbles} is not packed decimal")
    number = int(digits)
    return -number if sign == "d" else number

