"""Encodes and decodes fixed-width EBCDIC records from a copybook layout.

A record's values are a dict keyed by the copybook's names (FILLER omitted);
an OCCURS group is a list of such dicts. Text is cp037, left-justified and
space-filled; zoned numbers are cp037 digits; packed numbers are COMP-3 with a
C (plus) or D (minus) sign nibble. Decoding checks every byte it reads, so a
garbled record is refused, never misread.
"""

from mainframe_bridge.copybook import PACKED, TEXT, ZONED, Group, Item

CODEC = "cp037"


# cp037 maps the 256 Latin-1 characters one to one onto the 256 bytes, so text is encoded as Latin-1
# and translated byte for byte (and back): the bytes of str.encode("cp037"), in a fraction of the time.
_LATIN1 = bytes(range(256)).decode("latin-1")
_TO_EBCDIC = bytes.maketrans(bytes(range(256)), _LATIN1.encode(CODEC))
_FROM_EBCDIC = bytes.maketrans(_LATIN1.encode(CODEC), bytes(range(256)))


class RecordError(ValueError):
    """Bytes that are not a valid record, or values that do not fit one."""


class RecordCodec:
    def __init__(self, layout: Group):
        self.name = layout.name
        self.layout = layout
        self.size = layout.size
        first = layout.children[0]
        self.record_type = first.value.encode(CODEC) if isinstance(first, Item) and first.value else None
        # A record without OCCURS groups (every online record and the EOD detail) is a flat list of
        # items at fixed offsets: worked out once here, since records are encoded and decoded by the
        # thousand a second. Records with groups take the general path below.
        self._flat = None
        if not any(isinstance(child, Group) for child in layout.children):
            self._flat = _flat_fields(layout.children)
            self._decoded = [field for field in self._flat if not field.filler]

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
        if self._flat is not None:
            return _encode_flat(self._flat, values)
        out: list[bytes] = []
        _encode_group(self.layout.children, values, out)
        return b"".join(out)

    def decode(self, data: bytes | memoryview, offset: int = 0) -> dict:
        if len(data) - offset < self.size:
            raise RecordError(f"{self.name}: {len(data) - offset} bytes, a record needs {self.size}")
        raw = bytes(data[offset:offset + self.size])
        # cp037 is one character per byte, so the text of the whole record is sliced by the same offsets.
        text = raw.translate(_FROM_EBCDIC).decode("latin-1")
        if self._flat is not None:
            return _decode_flat(self._decoded, raw, text)
        values: dict = {}
        _decode_group(self.layout.children, raw, text, 0, values)
        return values

    def decode_many(self, data: bytes | memoryview, offset: int, count: int) -> list[dict]:
        """count records one after the other from offset (a posting's entries, a file's details)."""
        size = self.size
        if self._flat is None or len(data) - offset < count * size:
            return [self.decode(data, offset + index * size) for index in range(count)]
        raw = bytes(data[offset:offset + count * size])
        text = raw.translate(_FROM_EBCDIC).decode("latin-1")  # once for them all
        return [_decode_flat(self._decoded, raw[start:start + size], text[start:start + size])
                for start in range(0, count * size, size)]


class _Field:
    """An item of a flat record with its offsets, as the hot paths read it."""

    __slots__ = ("item", "name", "kind", "digits", "start", "end", "value", "allowed", "filler", "limit")

    def __init__(self, item: Item, start: int):
        self.item, self.name, self.kind, self.digits = item, item.name, item.kind, item.digits
        self.start, self.end = start, start + item.size
        self.value = item.value
        self.allowed = frozenset(item.conditions.values()) if item.conditions else None
        self.filler = item.filler
        self.limit = 10 ** item.digits


def _flat_fields(children) -> list[_Field]:
    fields, offset = [], 0
    for item in children:
        fields.append(_Field(item, offset))
        offset += item.size
    return fields


def _encode_flat(fields: list[_Field], values: dict) -> bytes:
    # Text and zoned items are gathered and encoded to EBCDIC in one call; a packed item ends the run.
    # The checks of _text and _zoned are inlined for values of the expected type; those helpers
    # still explain a refusal, and convert anything else.
    out: list[bytes] = []
    run: list[str] = []
    for field in fields:
        value = field.value if field.filler else values.get(field.name, field.value)
        kind = field.kind
        if kind is TEXT:
            if value.__class__ is not str or len(value) > field.digits:
                value = _text(field.item, value)
            run.append(value.ljust(field.digits))
        elif kind is ZONED:
            if value.__class__ is not int or not 0 <= value < field.limit:
                run.append(_zoned(field.item, value))
            else:
                run.append(str(value).zfill(field.digits))
        else:
            if run:
                out.append(_ebcdic("".join(run)))
                run = []
            out.append(_packed(field.item, value))
    if run:
        out.append(_ebcdic("".join(run)))
    return b"".join(out)


def _decode_flat(fields: list[_Field], raw: bytes, text: str) -> dict:
    values: dict = {}
    for field in fields:
        kind = field.kind
        value: str | int
        if kind is TEXT:
            value = text[field.start:field.end].rstrip(" ")
        elif kind is ZONED:
            value = text[field.start:field.end]
            if not (value.isascii() and value.isdigit()):
                _read_zoned(field.item, value)  # raises
            value = int(value)
        else:
            value = _read_packed(field.item, raw[field.start:field.end])
        if field.value is not None and value != field.value:
            raise RecordError(f"{field.name} is {value!r}, expected {field.value!r}")
        if field.allowed is not None and value not in field.allowed:
            raise RecordError(f"{field.name} is {value!r}, expected one of {sorted(field.allowed)}")
        values[field.name] = value
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
    out.append(_ebcdic(text))


def _ebcdic(text: str) -> bytes:
    try:
        return text.encode("latin-1").translate(_TO_EBCDIC)
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
        value: str | int
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

