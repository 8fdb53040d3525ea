"""The bank's calendar: Lima's clock, the 20:00 cut-off, weekends, Peru's holidays, bank holidays."""

import datetime as dt
import time

import pytest

from paymesh.business_calendar import BusinessCalendar, Clock, parse_date, read_holidays

LIMA = dt.timezone(dt.timedelta(hours=-5))


def lima(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=LIMA)


@pytest.mark.parametrize("instant, value, booking", [
    ("2026-11-27 19:59:59", "2026-11-27", "2026-11-27"),  # Friday before the cut-off
    ("2026-11-27 20:00:00", "2026-11-27", "2026-11-30"),  # at the cut-off: Monday
    ("2026-11-27 20:01:00", "2026-11-27", "2026-11-30"),
    ("2026-11-26 20:01:00", "2026-11-26", "2026-11-27"),  # a Thursday evening: Friday
    ("2026-11-28 10:00:00", "2026-11-28", "2026-11-30"),  # Saturday
    ("2026-11-29 23:59:00", "2026-11-29", "2026-11-30"),  # Sunday
    ("2026-07-28 10:00:00", "2026-07-28", "2026-07-30"),  # Independence Day, then 29 July: Thursday 30
    ("2026-07-27 20:30:00", "2026-07-27", "2026-07-30"),  # the evening before the holidays
    ("2026-12-24 21:00:00", "2026-12-24", "2026-12-28"),  # Christmas Eve after the cut-off: Monday 28
])
def test_value_and_booking_dates(calendar, instant, value, booking):
    assert calendar.value_date(lima(instant)).isoformat() == value
    assert calendar.booking_date(lima(instant)).isoformat() == booking


def test_utc_evening_is_still_lima_afternoon(calendar):
    # 00:30 UTC on the 28th is 19:30 on the 27th in Lima: the 27th, before its cut-off.
    instant = dt.datetime(2026, 11, 28, 0, 30, tzinfo=dt.UTC)
    assert calendar.value_date(instant) == dt.date(2026, 11, 27)
    assert calendar.booking_date(instant) == dt.date(2026, 11, 27)


def test_holidays_come_from_the_holidays_package(calendar):
    for day in ("2026-01-01", "2026-04-03", "2026-06-29", "2026-08-30", "2026-12-08", "2027-07-28"):
        assert not calendar.is_business_day(parse_date(day)), day
    assert calendar.is_business_day(dt.date(2026, 12, 1))


def test_bank_holidays_from_a_file(tmp_path):
    path = tmp_path / "holidays.txt"
    path.write_text("# bank's own days\n2026-12-31  # year-end closing\n\n")
    calendar = BusinessCalendar(extra_holidays=read_holidays(path))
    assert not calendar.is_business_day(dt.date(2026, 12, 31))
    assert calendar.booking_date(lima("2026-12-30 20:30:00")) == dt.date(2027, 1, 4)  # 31st, 1st, weekend
    path.write_text("2026-13-01\n")
    with pytest.raises(ValueError, match="holidays.txt:1"):
        read_holidays(path)


def test_business_days_between(calendar):
    friday, monday, tuesday = dt.date(2026, 11, 27), dt.date(2026, 11, 30), dt.date(2026, 12, 1)
    assert calendar.business_days_between(friday, monday) == 1
    assert calendar.business_days_between(friday, tuesday) == 2
    assert calendar.business_days_between(tuesday, friday) == 0
    assert calendar.business_days_between(dt.date(2026, 11, 28), monday) == 1  # from a Saturday


def test_a_day_file_collected_yesterday_books_today_keeping_its_value_date(calendar):
    now = lima("2026-12-01 09:00:00")
    assert calendar.booking_date_of(dt.date(2026, 11, 30), now) == dt.date(2026, 12, 1)
    assert calendar.booking_date_of(dt.date(2026, 11, 28), now) == dt.date(2026, 12, 1)


def test_a_clock_started_at_an_instant_runs_on():
    clock = Clock(lima("2026-11-27 19:59:59"))
    first = clock.now()
    assert abs((first - lima("2026-11-27 19:59:59")).total_seconds()) < 1
    time.sleep(0.05)
    assert clock.now() > first
    with pytest.raises(ValueError):
        Clock(dt.datetime(2026, 11, 27, 10))  # a naive start says nothing about where it is


def test_environment(monkeypatch):
    monkeypatch.setenv("PAYMESH_CLOCK_START", "2026-11-28T10:00:00-05:00")
    monkeypatch.setenv("PAYMESH_CUTOFF", "18:30")
    calendar = BusinessCalendar.from_env()
    assert calendar.value_date() == dt.date(2026, 11, 28)
    assert calendar.booking_date() == dt.date(2026, 11, 30)
    assert calendar.booking_date(lima("2026-11-27 18:45:00")) == dt.date(2026, 11, 30)


@pytest.mark.parametrize("text", ["2026-02-30", "27/11/2026", "2026-1-5", "", "not-a-date", "2026-11-27 "])
def test_malformed_dates(text):
    assert parse_date(text) is None
