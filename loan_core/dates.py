"""Due dates are monthly. (Dates on the wire, strict YYYY-MM-DD: paymesh.business_calendar.parse_date.)"""

from datetime import date


def add_months(start: date, months: int) -> date:
    """The same day `months` later (the seeded portfolio disburses on days 1..28, which every month has)."""
    index = start.month - 1 + months
    return start.replace(year=start.year + index // 12, month=index % 12 + 1)
