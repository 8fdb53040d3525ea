"""What the hot stores keep of a business day once it is archived and dropped (paymesh archive --drop).

A closed, reconciled day is written to the archive, then each service drops its rows of the day in one
transaction. What stays behind is the day's idempotency keys: the router keeps each payment's key, body
hash and final status, the bridge each posting id's digest and standing, for KEY_RETENTION_DAYS after
the day. A key of a dropped day sent again within that time is answered as before (never applied or
posted twice); after it, the key is forgotten, so the channels' contract is a key unique for at least
that long. The loan cores drop nothing: their movements are the loan book, which a later reversal
replays. docs/business-day.md has the table of every store's retention.
"""

import datetime as dt

from bank.common.v1 import errors_pb2
from paymesh.errors import Refused

# Longer than any channel's retry or a day file's re-upload, and than a month's statement cycle.
KEY_RETENTION_DAYS = 90


def keys_kept_from(business_date: str) -> str:
    """The oldest business date whose keys a drop of business_date keeps (YYYY-MM-DD)."""
    return (dt.date.fromisoformat(business_date) - dt.timedelta(days=KEY_RETENTION_DAYS)).isoformat()


def not_final(message: str) -> Refused:
    """A drop refused because the day is not final in this store: nothing was dropped."""
    return Refused(errors_pb2.ERROR_REASON_BUSINESS_DAY_NOT_FINAL, message)
