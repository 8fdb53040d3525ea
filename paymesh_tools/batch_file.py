"""The day file agents and stores send, as CSV (UTF-8, comma-separated, no quoting needed):

    H,<batch_id>,<business_date YYYY-MM-DD>
    D,<line_number>,<loan_id>,<currency>,<amount_minor>,<prepayment_mode>,<channel_reference>
    ...
    T,<line_count>,<currency>=<total_minor>;<currency>=<total_minor>

prepayment_mode is REDUCE_TERM, REDUCE_INSTALLMENT or empty (the product's default);
amounts are integer minor units (cents). The trailer's count and per-currency
control totals must match the lines, or the file is refused whole.

read_batch_file checks the file before anything is sent: it must be strict UTF-8
(a leading byte order mark is allowed and ignored), no line longer than
MAX_LINE_CHARS, at most the router's MAX_LINES lines, one header first, one trailer
last. Each problem raises its own BatchFileError subclass, whose message is one
line naming the file and the line (and, for bad UTF-8, the byte).
"""

import csv
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bank.common.v1 import types_pb2
from bank.payments.v1 import payment_service_pb2 as api, payments_pb2

MODES = {"": types_pb2.PREPAYMENT_MODE_UNSPECIFIED, "REDUCE_TERM": types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
         "REDUCE_INSTALLMENT": types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT}
MODE_NAMES = {value: name for name, value in MODES.items()}


class BatchFileError(ValueError):
    """The file cannot be read or is not in the documented format; the message (one line) names the line."""


class FileNotFound(BatchFileError):
    """There is no such file."""


class IsDirectory(BatchFileError):
    """FILE names a directory."""


class NotReadable(BatchFileError):
    """The file exists but cannot be opened or read (permissions, an I/O error)."""


class NotUtf8(BatchFileError):
    """A byte sequence that is not UTF-8."""


class TooLong(BatchFileError):
    """A line (or a quoted field) longer than MAX_LINE_CHARS, or more lines than the router takes."""


class MalformedRecord(BatchFileError):
    """A record that is not a well-formed H, D or T record."""


class BadStructure(BatchFileError):
    """Not one header, then its lines, then one trailer: a header or trailer missing, repeated or misplaced."""


# Every legitimate record is well under 200 characters (ids and references are at most 64); this
# bounds what is read into memory and what a message may quote.
MAX_LINE_CHARS = 4096
BOM = "\ufeff"
_SHOWN = 60  # characters of a bad value quoted in a message
INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits; the proto fields are int64


def read_batch_file(path: Path) -> list[api.UploadBatchRequest]:
    """The file as the UploadBatch stream's messages: header, lines, trailer (raises BatchFileError)."""
    from payment_router.batch import MAX_LINES

    try:
        if path.is_dir():
            raise IsDirectory(f"{path}: is a directory, not a batch file")
        f = open(path, encoding="utf-8", errors="surrogateescape", newline="")  # noqa: SIM115 (the with below)
    except FileNotFoundError:
        raise FileNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise IsDirectory(f"{path}: is a directory, not a batch file") from None
    except OSError as error:
        raise NotReadable(f"{path}: cannot be opened: {error.strerror or error}") from None
    requests: list[api.UploadBatchRequest] = []
    kinds: list[str | None] = []  # each request's part
    lines = 0
    with f:
        reader = csv.reader(_checked_lines(path, f))
        first_line = 1
        try:
            for row in reader:
                number, first_line = first_line, reader.line_num + 1
                request = _request_of(path, number, row)
                _check_order(path, number, kinds, request, row)
                kinds.append(request.WhichOneof("part"))
                lines += kinds[-1] == "line"
                if lines > MAX_LINES:
                    raise TooLong(f"{path}:{number}: more than {MAX_LINES} lines, the most a batch may hold")
                requests.append(request)
        except csv.Error as error:
            where = f"{path}:{reader.line_num}"
            if "field limit" in str(error):
                raise TooLong(f"{where}: a quoted field longer than {csv.field_size_limit()} characters") from None
            raise MalformedRecord(f"{where}: malformed CSV: {error}") from None
        except OSError as error:
            raise NotReadable(f"{path}:{first_line}: cannot be read: {error.strerror or error}") from None
    if not kinds:
        raise BadStructure(f"{path}: empty file: no header (H,<batch_id>,<business_date>)")
    if kinds[-1] != "trailer":
        raise BadStructure(f"{path}: no trailer: the file ends (line {first_line - 1}) without a "
                           f"T,<line_count>,<totals> record")
    return requests


def _checked_lines(path: Path, f) -> Iterator[str]:
    """The file's lines (with their line ends) once each is known to be UTF-8 and not too long."""
    offset = 0  # bytes of the file before this line
    for number in itertools.count(1):
        line = f.readline(MAX_LINE_CHARS + 2)  # room for the line end
        if not line:
            return
        if number == 1 and line.startswith(BOM):
            line, offset = line[1:], 3  # UTF-8's byte order mark, which some editors write: not data
        text = line.removesuffix("\n")
        text = text.removesuffix("\r")
        if len(text) > MAX_LINE_CHARS:
            raise TooLong(f"{path}:{number}: line longer than {MAX_LINE_CHARS} characters")
        bad = next((i for i, c in enumerate(line) if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:
            column = len(line[:bad].encode("utf-8", "surrogateescape"))
            raise NotUtf8(f"{path}:{number}: not UTF-8: byte 0x{ord(line[bad]) - 0xDC00:02x} at byte {column + 1} "
                          f"of the line (offset {offset + column} in the file); save the file as UTF-8")
        offset += len(line.encode("utf-8"))
        yield line


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _integer(path: Path, number: int, name: str, value: str) -> int:
    if not INTEGER.fullmatch(value):
        raise MalformedRecord(f"{path}:{number}: {name} must be an integer, not {_shown(value)}")
    if not -2**63 <= int(value) < 2**63:
        raise MalformedRecord(f"{path}:{number}: {name} out of range: {_shown(value)}")
    return int(value)


HEADER = "H,<batch_id>,<business_date YYYY-MM-DD>"
LINE = "D,<line_number>,<loan_id>,<currency>,<amount_minor>,<prepayment_mode>,<channel_reference>"
TRAILER = "T,<line_count>,<currency>=<total_minor>;..."


def _request_of(path: Path, number: int, row: list[str]) -> api.UploadBatchRequest:
    kind = row[0] if row else ""

    def needs(fields: int, layout: str) -> None:
        if len(row) < fields:
            raise MalformedRecord(f"{path}:{number}: {kind} record with {len(row)} fields, needs {fields}: {layout}")

    if kind == "H":
        needs(3, HEADER)
        return api.UploadBatchRequest(header=api.BatchHeader(batch_id=row[1], business_date=row[2]))
    if kind == "D":
        needs(6, LINE)
        if row[5] not in MODES:
            raise MalformedRecord(f"{path}:{number}: prepayment_mode must be REDUCE_TERM, REDUCE_INSTALLMENT "
                                  f"or empty, not {_shown(row[5])}")
        order = payments_pb2.PaymentOrder(
            loan_id=row[2], amount=types_pb2.Money(currency_code=row[3],
                                                   amount_minor=_integer(path, number, "amount_minor", row[4])),
            prepayment_mode=MODES[row[5]], channel_reference=row[6] if len(row) > 6 else "",
        )
        return api.UploadBatchRequest(line=api.BatchLine(
            line_number=_integer(path, number, "line_number", row[1]), payment=order))
    if kind == "T":
        needs(3, TRAILER)
        totals = []
        for item in (item for item in row[2].split(";") if item):
            currency, equals, amount = item.partition("=")
            if not equals:
                raise MalformedRecord(f"{path}:{number}: a control total is <currency>=<total_minor>, "
                                      f"not {_shown(item)}")
            totals.append(types_pb2.Money(currency_code=currency,
                                          amount_minor=_integer(path, number, "a control total", amount)))
        return api.UploadBatchRequest(trailer=api.BatchTrailer(
            line_count=_integer(path, number, "line_count", row[1]), control_totals=totals))
    if not row or row == [""]:
        raise MalformedRecord(f"{path}:{number}: empty line (each line is an H, D or T record)")
    raise MalformedRecord(f"{path}:{number}: unknown record type {_shown(kind)} (H, D or T)")


def _check_order(path: Path, number: int, kinds: list[str | None], request: api.UploadBatchRequest, row) -> None:
    """One header first, then lines, then one trailer last (the end is checked by read_batch_file)."""
    part = request.WhichOneof("part")
    if kinds and kinds[-1] == "trailer":
        raise BadStructure(f"{path}:{number}: a {row[0]} record after the trailer: the trailer must be the last line")
    if not kinds and part != "header":
        raise BadStructure(f"{path}:{number}: no header: the file must start with {HEADER}, not a {row[0]} record")
    if kinds and part == "header":
        raise BadStructure(f"{path}:{number}: a second header: a file holds one batch")


def write_batch_file(path: Path, batch_id: str, business_date: str, orders: list[payments_pb2.PaymentOrder],
                     trailer_override: tuple[int, dict[str, int]] | None = None) -> None:
    """Writes a day file; trailer_override (count, totals) makes a wrong trailer for tests."""
    totals: Counter[str] = Counter()
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["H", batch_id, business_date])
        for number, order in enumerate(orders, start=1):
            out.writerow(["D", number, order.loan_id, order.amount.currency_code, order.amount.amount_minor,
                          MODE_NAMES[order.prepayment_mode], order.channel_reference])
            totals[order.amount.currency_code] += order.amount.amount_minor
        count, trailer_totals = trailer_override or (len(orders), totals)
        out.writerow(["T", count, ";".join(f"{c}={a}" for c, a in sorted(trailer_totals.items()))])


def stream_of(requests: list[api.UploadBatchRequest], progress=None) -> Iterator[api.UploadBatchRequest]:
    for sent, request in enumerate(requests, start=1):
        if progress:
            progress(sent, len(requests))
        yield request
