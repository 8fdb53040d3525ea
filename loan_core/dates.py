"""Business dates on the wire are strict ISO dates, YYYY-MM-DD; due dates are monthly."""

import re
from datetime import date

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(text: str) -> date | None:
    """The date written as YYYY-MM-DD, or None for anything else (empty, 20240101, 2024-02-30)."""
    if not _ISO_DATE.fullmatch(text or ""):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def add_months(start: date, months: int) -> date:
    """The same day `months` later; disbursement days are 1..28 so every month has that day."""
    index = start.month - 1 + months
    return start.replace(year=start.year + index // 12, month=index % 12 + 1)
