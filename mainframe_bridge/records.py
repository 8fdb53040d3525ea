"""The ledger's records, as the copybook mainframe_bridge/copybooks/glpost.cpy
defines them: postings and their replies, operator control, the end-of-day file.

A posting travels as one frame: its POSTING-HEADER record followed by one
POSTING-ENTRY record per ledger entry (PH-ENTRY-COUNT of them). A page of the
mainframe's book travels as one frame: BOOK-ITEM records, then a BOOK-END.
"""

from pathlib import Path
from typing import NamedTuple

from bank.common.v1 import types_pb2
from bank.ledger.v1 import ledger_pb2
from mainframe_bridge import copybook
from mainframe_bridge.codec import CODEC, RecordCodec, RecordError
from mainframe_bridge.framing import MAX_FRAME

COPYBOOK = Path(__file__).parent / "copybooks" / "glpost.cpy"
_LAYOUTS = copybook.load(COPYBOOK)
HEADER = RecordCodec(_LAYOUTS["POSTING-HEADER"])
ENTRY = RecordCodec(_LAYOUTS["POSTING-ENTRY"])
REPLY = RecordCodec(_LAYOUTS["POSTING-REPLY"])
CONTROL = RecordCodec(_LAYOUTS["CONTROL-REQUEST"])
CONTROL_REPLY = RecordCodec(_LAYOUTS["CONTROL-REPLY"])
EOD_HEADER = RecordCodec(_LAYOUTS["EOD-HEADER"])
EOD_DETAIL = RecordCodec(_LAYOUTS["EOD-DETAIL"])
EOD_TRAILER = RecordCodec(_LAYOUTS["EOD-TRAILER"])
EOD_REPLY = RecordCodec(_LAYOUTS["EOD-REPLY"])
BOOK_INQUIRY = RecordCodec(_LAYOUTS["BOOK-INQUIRY"])
BOOK_ITEM = RecordCodec(_LAYOUTS["BOOK-ITEM"])
BOOK_END = RecordCodec(_LAYOUTS["BOOK-END"])

# The most entries one posting frame can carry.
MAX_ENTRIES = min((MAX_FRAME - HEADER.size) // ENTRY.size, 10 ** 3 - 1)
SIDES = {ledger_pb2.ENTRY_SIDE_DEBIT: "D", ledger_pb2.ENTRY_SIDE_CREDIT: "C"}
CHANNELS = frozenset(v for v in types_pb2.Channel.values() if v)
LOAN_TYPES = frozenset(v for v in types_pb2.LoanType.values() if v)
# The most BOOK-ITEM records one book page carries beside its BOOK-END.
BOOK_ITEMS_PER_PAGE = (MAX_FRAME - BOOK_END.size) // BOOK_ITEM.size

# Return codes of POSTING-REPLY, EOD-REPLY and BOOK-END.
RC_OK = 0
RC_UNBALANCED = 8
RC_UNKNOWN_ACCOUNT = 12
RC_CONTROL_TOTALS = 16  # end-of-day control totals are not the details' (or debits are not credits)
RC_LEDGER_MISMATCH = 20  # end-of-day details are not the ledger's day
RC_MALFORMED = 24
RC_NOT_ALLOWED = 40  # a ledger record from an identity other than the bridge
RC_DAY_CLOSED = 28  # the business day is closed: a posting for it, or another end-of-day file
RC_RECORD_COUNTS = 32  # the trailer's record counts are not the file's
RC_HASH_TOTAL = 36  # the trailer's hash total is not the details'


# Named tuples rather than frozen dataclasses: just as immutable, comparable and hashable, and several
# times cheaper to make; the bridge and the emulator make several per posting.
class Entry(NamedTuple):
    entry_id: str
    account: str
    side: str  # "D" or "C"
    currency: str
    amount: int  # minor units


class PostingRecord(NamedTuple):
    posting_id: str
    business_date: int  # YYYYMMDD
    payment_id: str
    channel: int
    loan_type: int
    entries: tuple[Entry, ...]


class Reply(NamedTuple):
    posting_id: str
    return_code: int
    reference: str
    message: str


class BookItem(NamedTuple):
    """One entry of a posting in the mainframe's book; (seq, line) is its place in the book."""

    seq: int
    line: int
    posting_id: str
    payment_id: str
    channel: int
    loan_type: int
    entry: Entry


class BookPage(NamedTuple):
    business_date: int
    return_code: int
    items: list[BookItem]
    more: bool  # ask again after (last_seq, last_line)
    last_seq: int
    last_line: int
    message: str


def record_type(frame: bytes | bytearray) -> str:
    return frame[:4].decode(CODEC)


def date_number(iso_date: str) -> int:
    """"2024-01-31" -> 20240131."""
    return int(iso_date.replace("-", ""))


def iso_date(number: int) -> str:
    text = f"{number:08d}"
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


def record_of(posting: ledger_pb2.Posting) -> PostingRecord:
    """The record form of a validated posting."""
    return PostingRecord(
        posting.posting_id, date_number(posting.business_date), posting.payment_id,
        posting.channel, posting.loan_type,
        tuple(Entry(e.entry_id, e.account, SIDES[e.side], e.amount.currency_code, e.amount.amount_minor)
              for e in posting.entries),
    )


def encode_posting(posting: PostingRecord) -> bytes:
    if len(posting.entries) > MAX_ENTRIES:
        raise RecordError(f"{len(posting.entries)} entries, a posting carries at most {MAX_ENTRIES}")
    parts = [HEADER.encode({
        "PH-POSTING-ID": posting.posting_id, "PH-BUSINESS-DATE": posting.business_date,
        "PH-PAYMENT-ID": posting.payment_id, "PH-CHANNEL": posting.channel,
        "PH-LOAN-TYPE": posting.loan_type, "PH-ENTRY-COUNT": len(posting.entries),
    })]
    for entry in posting.entries:
        parts.append(ENTRY.encode({
            "PE-ENTRY-ID": entry.entry_id, "PE-ACCOUNT": entry.account, "PE-SIDE": entry.side,
            "PE-CURRENCY": entry.currency, "PE-AMOUNT": entry.amount,
        }))
    return b"".join(parts)


def decode_posting(frame: bytes) -> PostingRecord:
    header = HEADER.decode(frame)
    count = header["PH-ENTRY-COUNT"]
    if len(frame) != HEADER.size + count * ENTRY.size:
        raise RecordError(f"posting frame of {len(frame)} bytes does not hold {count} entries")
    entries = tuple(Entry(values["PE-ENTRY-ID"], values["PE-ACCOUNT"], values["PE-SIDE"], values["PE-CURRENCY"],
                          values["PE-AMOUNT"]) for values in ENTRY.decode_many(frame, HEADER.size, count))
    return PostingRecord(header["PH-POSTING-ID"], header["PH-BUSINESS-DATE"], header["PH-PAYMENT-ID"],
                         header["PH-CHANNEL"], header["PH-LOAN-TYPE"], entries)


def encode_reply(reply: Reply) -> bytes:
    return REPLY.encode({
        "PR-POSTING-ID": reply.posting_id, "PR-RETURN-CODE": reply.return_code,
        "PR-REFERENCE": reply.reference, "PR-MESSAGE": reply.message[:80],
    })


def decode_reply(frame: bytes) -> Reply:
    if len(frame) != REPLY.size:
        raise RecordError(f"reply frame of {len(frame)} bytes, expected {REPLY.size}")
    values = REPLY.decode(frame)
    return Reply(values["PR-POSTING-ID"], values["PR-RETURN-CODE"], values["PR-REFERENCE"], values["PR-MESSAGE"])


def encode_control(mode: str, delay_ms: int = 0) -> bytes:
    return CONTROL.encode({"CR-MODE": mode.upper(), "CR-DELAY-MS": delay_ms})


def encode_book_inquiry(business_date: int, after_seq: int = 0, after_line: int = 0) -> bytes:
    return BOOK_INQUIRY.encode({"BQ-BUSINESS-DATE": business_date, "BQ-AFTER-SEQ": after_seq,
                                "BQ-AFTER-LINE": after_line})


def encode_book_page(page: BookPage) -> bytes:
    if len(page.items) > BOOK_ITEMS_PER_PAGE:
        raise RecordError(f"{len(page.items)} book items, a page carries at most {BOOK_ITEMS_PER_PAGE}")
    parts = [BOOK_ITEM.encode({
        "BI-POSTING-SEQ": item.seq, "BI-LINE": item.line, "BI-POSTING-ID": item.posting_id,
        "BI-PAYMENT-ID": item.payment_id, "BI-CHANNEL": item.channel, "BI-LOAN-TYPE": item.loan_type,
        "BI-ENTRY-ID": item.entry.entry_id, "BI-ACCOUNT": item.entry.account, "BI-SIDE": item.entry.side,
        "BI-CURRENCY": item.entry.currency, "BI-AMOUNT": item.entry.amount,
    }) for item in page.items]
    parts.append(BOOK_END.encode({
        "BN-BUSINESS-DATE": page.business_date, "BN-RETURN-CODE": page.return_code,
        "BN-ITEM-COUNT": len(page.items), "BN-MORE": "Y" if page.more else "N",
        "BN-LAST-SEQ": page.last_seq, "BN-LAST-LINE": page.last_line, "BN-MESSAGE": page.message[:80],
    }))
    return b"".join(parts)


def decode_book_page(frame: bytes) -> BookPage:
    count, rest = divmod(len(frame) - BOOK_END.size, BOOK_ITEM.size)
    if count < 0 or rest:
        raise RecordError(f"book page of {len(frame)} bytes is not items and a BOOK-END")
    end = BOOK_END.decode(frame, count * BOOK_ITEM.size)
    if end["BN-ITEM-COUNT"] != count:
        raise RecordError(f"BOOK-END counts {end['BN-ITEM-COUNT']} items, the page has {count}")
    items = [BookItem(v["BI-POSTING-SEQ"], v["BI-LINE"], v["BI-POSTING-ID"], v["BI-PAYMENT-ID"], v["BI-CHANNEL"],
                      v["BI-LOAN-TYPE"], Entry(v["BI-ENTRY-ID"], v["BI-ACCOUNT"], v["BI-SIDE"], v["BI-CURRENCY"],
                                               v["BI-AMOUNT"]))
             for v in BOOK_ITEM.decode_many(frame, 0, count)]
    return BookPage(end["BN-BUSINESS-DATE"], end["BN-RETURN-CODE"], items, end["BN-MORE"] == "Y",
                    end["BN-LAST-SEQ"], end["BN-LAST-LINE"], end["BN-MESSAGE"])


def imbalance(entries) -> dict[str, int]:
    """Debits minus credits per currency, for the currencies that do not balance."""
    net: dict[str, int] = {}
    for entry in entries:
        net[entry.currency] = net.get(entry.currency, 0) + (entry.amount if entry.side == "D" else -entry.amount)
    return {currency: amount for currency, amount in net.items() if amount}
