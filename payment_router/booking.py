"""The two dates of every payment the router accepts: its value date and its
booking date, from the bank's calendar (paymesh.business_calendar), never on a day
the ledger has already closed.

The bridge is the authority on which days are closed. Every router replica asks it
every POLL_SECONDS, so once a close begins all of them book new payments in the next
business day within that time (the close waits longer than that before it seals the
day). A posting that still arrives for a sealed day is not lost: the bridge books it
in the next open day as a late item.
"""

import asyncio
import datetime as dt
import logging

import grpc

from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from paymesh.business_calendar import BusinessCalendar, parse_date

POLL_SECONDS = 0.25
log = logging.getLogger(__name__)


class Booking:
    def __init__(self, calendar: BusinessCalendar):
        self.calendar = calendar
        self.last_closed: dt.date | None = None  # as the bridge last said
        # Today's two dates, worked out once per second of the clock (every payment asks; the
        # cut-off falls on a whole second, so this is exact).
        self._second: tuple[int, dt.date | None] | None = None
        self._today: tuple[dt.date, dt.date] = (dt.date.min, dt.date.min)

    def open_day(self) -> dt.date:
        """The business day a payment made now is booked in."""
        return self._value_and_open_day()[1]

    def dates(self, value_date: dt.date | None = None) -> tuple[str, str]:
        """(value date, booking date) of a payment made now, or collected on value_date (a day
        file's line): booked today, and never before its value date's own business day."""
        today, open_day = self._value_and_open_day()
        if value_date is None:
            value_date = today
        booking = max(open_day, self.calendar.business_day_on_or_after(value_date))
        return value_date.isoformat(), booking.isoformat()

    def _value_and_open_day(self) -> tuple[dt.date, dt.date]:
        key = (int(self.calendar.clock.timestamp()), self.last_closed)
        if key != self._second:
            now = self.calendar.clock.now()
            day = self.calendar.booking_date(now)
            if self.last_closed is not None and day <= self.last_closed:
                day = self.calendar.next_business_day(self.last_closed)
            self._second, self._today = key, (self.calendar.value_date(now), day)
        return self._today

    def learn(self, last_closed: str) -> None:
        day = parse_date(last_closed)
        if day is not None and (self.last_closed is None or day > self.last_closed):
            log.info("business day closing at the ledger; new payments go to the next", extra={
                "closed": last_closed, "open_day": self.calendar.next_business_day(day).isoformat()})
            self.last_closed = day

    async def follow(self, bridge_stub) -> None:
        """Asks the bridge which day was closed last, for as long as the router runs."""
        while True:
            try:
                status = await bridge_stub.GetBusinessDayStatus(bridge_pb2.GetBusinessDayStatusRequest(), timeout=2.0)
                self.learn(status.last_closed_business_date)
            except grpc.aio.AioRpcError:
                pass  # the bridge is down: the last answer stands, and late postings are booked late
            await asyncio.sleep(POLL_SECONDS)
