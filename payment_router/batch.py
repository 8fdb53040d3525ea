"""A channel's day file through UploadBatch: header, lines, trailer.

The whole file is read, every line's format checked and its trailer checked
before any line is applied: a malformed line, or a count or control total (every
currency, as declared) that does not match, refuses the file and applies nothing.
Business refusals (a loan's rules, a channel's limit) are answered per line.
Each line's payment is named by (channel, batch id, line number), so uploading
the same file again, or resuming after an interruption, applies nothing twice.

The file's date (and a line's own collection date) is each line's value date: a
malformed one refuses the file (INVALID_ARGUMENT), one in the future or more than
PAYMESH_BATCH_MAX_AGE_BUSINESS_DAYS business days old too (FAILED_PRECONDITION).
A file of a day already closed is booked in the open day, with its value dates.
"""

import asyncio
import base64
import datetime as dt
import os
from collections import Counter

from bank.common.v1 import errors_pb2, types_pb2
from bank.payments.v1 import payment_service_pb2 as api
from payment_router.orders import KEY_PATTERN, validate
from paymesh.business_calendar import BusinessCalendar, parse_date
from paymesh.errors import Refused

MAX_LINES = 100_000
# Line results in an UploadBatch answer (at most about 500 bytes each: far under any client's default
# 4 MiB); the rest come from ListBatchResults, at most RESULTS_PER_PAGE at a time.
RESULTS_IN_ANSWER = 5_000
RESULTS_PER_PAGE = 5_000
DEFAULT_PAGE_SIZE = 1_000
LINES_IN_FLIGHT = 2000
CHUNK_LINES = 250  # lines validated, journaled and sent to the cores together
DEFAULT_MAX_AGE_BUSINESS_DAYS = 5  # an agent's file may come in late, not a week late


def max_age_business_days() -> int:
    return int(os.environ.get("PAYMESH_BATCH_MAX_AGE_BUSINESS_DAYS") or DEFAULT_MAX_AGE_BUSINESS_DAYS)


def _money(totals: Counter) -> list[types_pb2.Money]:
    return [types_pb2.Money(currency_code=c, amount_minor=a) for c, a in sorted(totals.items())]


def _malformed(message: str, *violations: tuple[str, str]) -> Refused:
    return Refused(errors_pb2.ERROR_REASON_INVALID_FIELD, message, violations=violations)


async def read_file(request_iterator) -> tuple[api.BatchHeader, list[api.BatchLine], api.BatchTrailer]:
    header: api.BatchHeader | None = None
    lines: list[api.BatchLine] = []
    trailer: api.BatchTrailer | None = None
    async for request in request_iterator:
        part = request.WhichOneof("part")
        if trailer is not None:
            raise _malformed("nothing may follow the trailer", ("part", "after the trailer"))
        if part == "header" and header is None and not lines:
            header = request.header
        elif part in ("line", "lines") and header is not None:
            lines.extend(request.lines.lines if part == "lines" else [request.line])
            if len(lines) > MAX_LINES:
                raise _malformed(f"a batch holds at most {MAX_LINES} lines", ("line", "too many lines"))
        elif part == "trailer" and header is not None:
            trailer = request.trailer
        else:
            raise _malformed("a batch is one header, then its lines, then one trailer",
                             ("part", f"unexpected {part or 'empty part'}"))
    if header is None or trailer is None:
        raise _malformed("the batch needs a header and a trailer",
                         ("header" if header is None else "trailer", "missing"))
    if not KEY_PATTERN.fullmatch(header.batch_id) or len(header.batch_id) > 40:
        raise _malformed("batch_id must be 1-40 characters of A-Z a-z 0-9 . _ : -", ("header.batch_id", "malformed"))
    return header, lines, trailer


def check_trailer(lines: list[api.BatchLine], trailer: api.BatchTrailer) -> None:
    numbers = [line.line_number for line in lines]
    if numbers != list(range(1, len(lines) + 1)):
        raise _malformed("line numbers must run 1, 2, 3, ... in order", ("line.line_number", "out of sequence"))
    totals: Counter[str] = Counter()
    for line in lines:
        totals[line.payment.amount.currency_code] += line.payment.amount.amount_minor
    # Exactly as declared: a currency twice, or a total of zero or less, is a mismatch too.
    declared = {m.currency_code: m.amount_minor for m in trailer.control_totals}
    if trailer.line_count != len(lines) or len(declared) != len(trailer.control_totals) or declared != dict(totals):
        raise Refused(
            errors_pb2.ERROR_REASON_CONTROL_TOTAL_MISMATCH,
            f"the trailer does not match the file: {len(lines)} lines totalling {dict(totals)}, trailer says "
            f"{trailer.line_count} lines totalling {dict(declared)}; nothing was applied",
            violations=[("trailer", "count or control total mismatch")],
        )


def value_dates(header: api.BatchHeader, lines: list[api.BatchLine], calendar: BusinessCalendar,
                max_age: int) -> list[dt.date]:
    """Each line's value date (its collection date, else the file's); raises Refused for the whole file."""
    file_date = parse_date(header.business_date)
    if file_date is None:
        raise _malformed("the batch header's business_date must be a date written YYYY-MM-DD",
                         ("header.business_date", f"{header.business_date[:20]!r} is not YYYY-MM-DD"))
    dates: list[dt.date] = []
    malformed: list[tuple[str, str]] = []
    for line in lines:
        day = parse_date(line.collection_date) if line.collection_date else file_date
        if day is None:
            malformed.append((f"line[{line.line_number}].collection_date", "not YYYY-MM-DD"))
        else:
            dates.append(day)  # (complete, one per line, unless malformed refuses the file below)
    if malformed:
        raise _malformed(f"{len(malformed)} lines have a collection_date that is not YYYY-MM-DD; nothing was applied",
                         *malformed[:100])
    today = calendar.value_date()
    # Each distinct day's age once: a file's lines share a handful of days, and counting business days
    # for each of 10,000 lines held the router's event loop (and every online call) some 60 ms.
    days = {file_date, *dates}
    ages = {day: calendar.business_days_between(day, today) for day in days if day <= today}
    if len(ages) == len(days) and max(ages.values()) <= max_age:
        return dates
    for field, day in [("header.business_date", file_date),
                       *((f"line[{line.line_number}].collection_date", day) for line, day in zip(lines, dates))]:
        if day > today:
            raise Refused(errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE,
                          f"{field} {day} is in the future (today is {today} in Lima); nothing was applied",
                          violations=[(field, "in the future")])
        if ages[day] > max_age:
            raise Refused(errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE,
                          f"{field} {day} is {ages[day]} business days old, more than the {max_age} a day file may"
                          " be; nothing was applied", violations=[(field, f"older than {max_age} business days")])
    return dates


async def check_lines(lines: list[api.BatchLine], caller, batch_id: str) -> None:
    """Every line's own fields, before anything is applied: one malformed line refuses the file. It lets
    the event loop run between chunks: 10,000 lines are some 50 ms of CPU, which online calls would wait."""
    malformed = []
    for n, line in enumerate(lines):
        if n % CHUNK_LINES == CHUNK_LINES - 1:
            await asyncio.sleep(0)
        try:
            validate(line.payment, caller.policy, f"{batch_id}:{line.line_number}",
                     prefix=f"line[{line.line_number}].payment")
        except Refused as refused:
            if refused.reason == errors_pb2.ERROR_REASON_INVALID_FIELD:
                malformed += refused.violations
    if malformed:
        raise _malformed(f"{len(malformed)} fields of the file's lines are malformed, first "
                         f"{malformed[0][0]}: {malformed[0][1]}; nothing was applied", *malformed[:100])


async def upload_batch(service, caller, request_iterator) -> api.UploadBatchResponse:
    header, lines, trailer = await read_file(request_iterator)
    await check_lines(lines, caller, header.batch_id)
    check_trailer(lines, trailer)
    dates = value_dates(header, lines, service.router.booking.calendar, max_age_business_days())
    outcomes: list = [None] * len(lines)
    chunks = iter(range(0, len(lines), CHUNK_LINES))

    async def worker():
        # A few chunks in flight at once keep the cores busy while each chunk is journaled in one commit.
        for start in chunks:
            chunk = lines[start:start + CHUNK_LINES]
            orders = [(line.payment, f"{header.batch_id}:{line.line_number}") for line in chunk]
            outcomes[start:start + len(chunk)] = await service.pay_many(
                caller, orders, batch_id=header.batch_id, value_dates=dates[start:start + len(chunk)])

    await asyncio.gather(*(worker() for _ in range(LINES_IN_FLIGHT // CHUNK_LINES)))
    summary = api.BatchSummary(batch_id=header.batch_id, line_count=len(lines))
    applied: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for payment, replayed in outcomes:
        summary.replayed_count += replayed
        if payment.status == types_pb2.PAYMENT_STATUS_REJECTED:
            summary.rejected_count += 1
            rejected[payment.amount.currency_code] += payment.amount.amount_minor
        else:
            summary.applied_count += 1
            applied[payment.amount.currency_code] += payment.amount.amount_minor
    summary.applied_totals.extend(_money(applied))
    summary.rejected_totals.extend(_money(rejected))
    await service.router.journal.record_batch_lines(
        caller.channel, header.batch_id,
        [(line.line_number, payment, payment.HasField("accept_time")) for line, (payment, _) in zip(lines, outcomes)])
    first = [api.BatchLineResult(line_number=line.line_number, payment=payment)
             for line, (payment, _) in zip(lines[:RESULTS_IN_ANSWER], outcomes)]
    more = page_token(lines[RESULTS_IN_ANSWER - 1].line_number) if len(lines) > RESULTS_IN_ANSWER else ""
    return api.UploadBatchResponse(summary=summary, results=first, next_page_token=more)


def page_token(last_line: int) -> str:
    """Opaque to the caller: where the next page starts."""
    return base64.urlsafe_b64encode(f"line:{last_line}".encode()).decode()


def line_of(token: str) -> int:
    """The last line a page token says was given; raises Refused for a token this router did not make."""
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "line" and number.isdigit() and len(number) <= 7:
            return int(number)
    except (ValueError, UnicodeError):
        pass
    raise _malformed("page_token is not one this service gave", ("page_token", "not a page token of ours"))


async def batch_results(service, caller, request: api.ListBatchResultsRequest) -> api.ListBatchResultsResponse:
    """A page of the caller's own file's line results; another channel's file, or none, is NOT_FOUND."""
    if not KEY_PATTERN.fullmatch(request.batch_id) or len(request.batch_id) > 40:
        raise _malformed("batch_id must be 1-40 characters of A-Z a-z 0-9 . _ : -", ("batch_id", "malformed"))
    if not 0 <= request.page_size <= RESULTS_PER_PAGE:
        raise _malformed(f"page_size must be 0 to {RESULTS_PER_PAGE}", ("page_size", "out of range"))
    after = line_of(request.page_token)
    size = request.page_size or DEFAULT_PAGE_SIZE
    rows = await service.router.journal.batch_results(caller.channel, request.batch_id, after, size + 1)
    if not rows and after == 0:
        raise Refused(errors_pb2.ERROR_REASON_BATCH_NOT_FOUND, f"no file {request.batch_id!r} from this channel",
                      "batch_id")
    page = rows[:size]
    return api.ListBatchResultsResponse(
        results=[api.BatchLineResult(line_number=number, payment=payment) for number, payment in page],
        next_page_token=page_token(page[-1][0]) if len(rows) > size else "")
