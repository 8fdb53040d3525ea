"""The mainframe's own book of a business day, read over the link as the bridge or
the operator: BOOK-INQUIRY records answered a page at a time (copybook glpost.cpy).

What the mainframe posted is the truth a reconciliation or an operator checks the
bridge against, so it is read from the mainframe itself, not from the bridge's queue.
"""

import asyncio
import ssl
from typing import NamedTuple

from mainframe_bridge import records
from mainframe_bridge.codec import RecordError
from mainframe_bridge.framing import FrameError, encode_frame, read_frame
from mainframe_bridge.link import open_link

PAGE_TIMEOUT = 10.0


class BookUnavailable(Exception):
    """The mainframe's book could not be read: no link, a dropped link, or an answer that is no book page."""


class BookPosting(NamedTuple):
    posting_id: str
    payment_id: str
    channel: int
    loan_type: int
    entries: tuple[records.Entry, ...]


async def read_book(address: str, context: ssl.SSLContext, business_date: str) -> list[BookPosting]:
    """Every posting the mainframe posted (return code 0000) on business_date ("YYYY-MM-DD"), in the
    order it first saw them, each with its entries in order."""
    date = records.date_number(business_date)
    try:
        reader, writer = await open_link(address, context)
    except (TimeoutError, OSError, ssl.SSLError) as fault:
        raise BookUnavailable(f"cannot reach the mainframe at {address} ({type(fault).__name__})") from fault
    items: list[records.BookItem] = []
    try:
        position, more = (0, 0), True
        while more:
            writer.write(encode_frame(records.encode_book_inquiry(date, *position)))
            await writer.drain()
            async with asyncio.timeout(PAGE_TIMEOUT):
                page = records.decode_book_page(await read_frame(reader))
            if page.return_code != records.RC_OK:
                raise BookUnavailable(f"the mainframe refused the book inquiry with return code "
                                      f"{page.return_code:04d}: {page.message}")
            # A page that does not move on would ask the same page for ever.
            if page.more and (page.last_seq, page.last_line) <= position:
                raise BookUnavailable(f"the mainframe's book page does not move past {position}")
            items += page.items
            position, more = (page.last_seq, page.last_line), page.more
    except (TimeoutError, OSError, asyncio.IncompleteReadError, FrameError, ssl.SSLError) as fault:
        raise BookUnavailable(f"the link to the mainframe failed while reading the book "
                              f"({type(fault).__name__})") from fault
    except (RecordError, UnicodeDecodeError) as bad:
        raise BookUnavailable(f"the mainframe's answer is no book page: {bad}") from bad
    finally:
        writer.close()
    return _postings(items)


def _postings(items: list[records.BookItem]) -> list[BookPosting]:
    """The items (one per entry, in (seq, line) order, a posting's entries maybe split over pages) by posting."""
    postings: list[BookPosting] = []
    entries: list[records.Entry] = []
    for index, item in enumerate(items):
        entries.append(item.entry)
        if index + 1 == len(items) or items[index + 1].seq != item.seq:
            postings.append(BookPosting(item.posting_id, item.payment_id, item.channel, item.loan_type,
                                        tuple(entries)))
            entries = []
    return postings
