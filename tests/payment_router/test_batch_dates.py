"""A day file's dates (payment_router.batch.value_dates), on the bank's calendar in Lima: each line's
value date is its collection date, else the file's; a date in the future or older than the age a file
may have refuses the whole file, naming the first field in the file's order that is."""

import datetime as dt

import pytest

from bank.common.v1 import errors_pb2
from bank.payments.v1 import payment_service_pb2 as api
from payment_router.batch import value_dates
from paymesh.business_calendar import BusinessCalendar, Clock
from paymesh.errors import Refused

# Thursday 2026-12-03, 10:00 in Lima: five business days back is Thursday 2026-11-26.
CALENDAR = BusinessCalendar(clock=Clock(dt.datetime.fromisoformat("2026-12-03T10:00:00-05:00")))


def file_of(header_date: str, *collection_dates: str) -> tuple[api.BatchHeader, list[api.BatchLine]]:
    header = api.BatchHeader(batch_id="dates", business_date=header_date)
    return header, [api.BatchLine(line_number=n, collection_date=day) for n, day in enumerate(collection_dates, 1)]


def test_each_line_takes_its_collection_date_else_the_files():
    header, lines = file_of("2026-12-02", "", "2026-11-30", "", "2026-11-26")
    assert value_dates(header, lines, CALENDAR, 5) == [dt.date(2026, 12, 2), dt.date(2026, 11, 30),
                                                       dt.date(2026, 12, 2), dt.date(2026, 11, 26)]


@pytest.mark.parametrize("dates, field, words", [
    (("", "2026-11-25", "2026-11-20"), "line[2].collection_date", "2026-11-25 is 6 business days old"),
    (("2026-12-04", "2026-11-20"), "line[1].collection_date", "2026-12-04 is in the future"),
    (("", "", "2026-11-30", "2026-12-07"), "line[4].collection_date", "2026-12-07 is in the future"),
])
def test_a_line_out_of_range_refuses_the_file_naming_the_first_such_line(dates, field, words):
    header, lines = file_of("2026-12-02", *dates)
    with pytest.raises(Refused) as refused:
        value_dates(header, lines, CALENDAR, 5)
    assert refused.value.reason == errors_pb2.ERROR_REASON_DATE_OUT_OF_RANGE
    assert [f for f, _ in refused.value.violations] == [field]
    assert words in str(refused.value)


def test_the_headers_date_is_checked_first():
    header, lines = file_of("2026-11-02", "2026-12-04")
    with pytest.raises(Refused) as refused:
        value_dates(header, lines, CALENDAR, 5)
    assert [f for f, _ in refused.value.violations] == ["header.business_date"]
