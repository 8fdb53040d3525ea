"""The bank's business calendar: Lima's clock, the day's cut-off, weekends, Peru's
public holidays (the `holidays` package) and the bank's own extra holidays.

Every payment gets two dates from it: its value date (the local date the customer
paid) and its booking date (the business day it is booked in: the same day when
that is a business day and the payment came before the cut-off, else the next
business day). No service takes a payment's date from its own UTC clock.

Settings (environment):
  PAYMESH_TIMEZONE        the bank's time zone (America/Lima)
  PAYMESH_CUTOFF          the day's cut-off, HH:MM local (20:00)
  PAYMESH_BANK_HOLIDAYS   a file of extra bank holidays, one YYYY-MM-DD per line (# comments)
  PAYMESH_CLOCK_START     for tests and simulations: an ISO 8601 instant the clock starts at
                          (it then runs at real speed); unset, the clock is the system's
  PAYMESH_CLOCK_STARTED_AT  the Unix time at which the clock read PAYMESH_CLOCK_START (default:
                          when the process started), so the processes of one mesh agree
"""

import argparse
import datetime as dt
import os
import time
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

DEFAULT_TIMEZONE = "America/Lima"
DEFAULT_CUTOFF = dt.time(20, 0)


class Clock:
    """Now, as an aware datetime. Started at an instant, it runs on from there at real speed."""

    def __init__(self, start: dt.datetime | None = None, started_at: float | None = None):
        if start is not None and start.tzinfo is None:
            raise ValueError("the clock's start needs a time zone offset")
        started_at = time.time() if started_at is None else started_at
        self._offset = 0.0 if start is None else start.timestamp() - started_at

    @classmethod
    def from_env(cls) -> "Clock":
        start = os.environ.get("PAYMESH_CLOCK_START", "").strip()
        started_at = os.environ.get("PAYMESH_CLOCK_STARTED_AT", "").strip()
        return cls(dt.datetime.fromisoformat(start) if start else None, float(started_at) if started_at else None)

    def timestamp(self) -> float:
        return time.time() + self._offset

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp(), dt.UTC)


def parse_date(text: str) -> dt.date | None:
    """A date written exactly YYYY-MM-DD, else None."""
    try:
        day = dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return day if len(text) == 10 and day.isoformat() == text else None


class BusinessCalendar:
    def __init__(self, timezone: str = DEFAULT_TIMEZONE, cutoff: dt.time = DEFAULT_CUTOFF,
                 extra_holidays: frozenset[dt.date] = frozenset(), clock: Clock | None = None):
        self.zone = ZoneInfo(timezone)
        self.cutoff = cutoff
        self.extra_holidays = extra_holidays
        self.clock = clock or Clock()
        self._peru = holidays.country_holidays("PE")

    @classmethod
    def from_env(cls) -> "BusinessCalendar":
        cutoff = os.environ.get("PAYMESH_CUTOFF", "").strip()
        holidays_file = os.environ.get("PAYMESH_BANK_HOLIDAYS", "").strip()
        return cls(
            timezone=os.environ.get("PAYMESH_TIMEZONE", "").strip() or DEFAULT_TIMEZONE,
            cutoff=dt.time.fromisoformat(cutoff) if cutoff else DEFAULT_CUTOFF,
            extra_holidays=read_holidays(Path(holidays_file)) if holidays_file else frozenset(),
            clock=Clock.from_env(),
        )

    def is_business_day(self, day: dt.date) -> bool:
        return _is_business_day(self, day)

    def next_business_day(self, day: dt.date) -> dt.date:
        """The first business day after day."""
        day += dt.timedelta(days=1)
        while not self.is_business_day(day):
            day += dt.timedelta(days=1)
        return day

    def business_day_on_or_after(self, day: dt.date) -> dt.date:
        return day if self.is_business_day(day) else self.next_business_day(day)

    def business_days_between(self, earlier: dt.date, later: dt.date) -> int:
        """How many business days lie after earlier up to and including later (0 if later <= earlier)."""
        count, day = 0, earlier
        while day < later:
            day = self.next_business_day(day)
            count += day <= later
        return count

    def local(self, instant: dt.datetime | None = None) -> dt.datetime:
        return (instant or self.clock.now()).astimezone(self.zone)

    def value_date(self, instant: dt.datetime | None = None) -> dt.date:
        """The local date at the instant (now by default): the day the customer paid."""
        return self.local(instant).date()

    def booking_date(self, instant: dt.datetime | None = None) -> dt.date:
        """The business day a payment made at the instant (now by default) is booked in."""
        local = self.local(instant)
        day = local.date()
        if self.is_business_day(day) and local.time() < self.cutoff:
            return day
        return self.next_business_day(day)

    def booking_date_of(self, value_date: dt.date, instant: dt.datetime | None = None) -> dt.date:
        """For a payment collected on value_date and presented now: today's booking date, never
        a day before its value date's own business day."""
        return max(self.booking_date(instant), self.business_day_on_or_after(value_date))


@lru_cache(maxsize=4096)  # asked for every payment; a calendar and a day always give the same answer
def _is_business_day(calendar: BusinessCalendar, day: dt.date) -> bool:
    return day.weekday() < 5 and day not in calendar._peru and day not in calendar.extra_holidays


def date_argument(text: str) -> str:
    """An argparse type: a date written exactly YYYY-MM-DD (fromisoformat alone takes 20261128 too)."""
    if parse_date(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD")
    return text


def read_holidays(path: Path) -> frozenset[dt.date]:
    days = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        day = parse_date(text)
        if day is None:
            raise ValueError(f"{path}:{number}: {text!r} is not a date YYYY-MM-DD")
        days.add(day)
    return frozenset(days)


@lru_cache(maxsize=1)
def bank_calendar() -> BusinessCalendar:
    """The process's calendar, from its environment (read once)."""
    return BusinessCalendar.from_env()
