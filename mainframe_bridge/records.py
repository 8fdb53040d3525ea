"""The ledger's records, as the copybook mainframe_bridge/copybooks/glpost.cpy
defines them: postings and their replies, operator control, the end-of-day file.

A posting travels as one frame: its POSTING-HEADER record followed by one
POSTING-ENTRY record per ledger entry (PH-ENTRY-COUNT of them).
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

# The most entries one posting frame can carry.
MAX_ENTRIES = min((MAX_FRAME - HEADER.size) // ENTRY.size, 10 ** 3 - 1)
SIDES = {ledger_pb2.ENTRY_SIDE_DEBIT: "D", ledger_pb2.ENTRY_SIDE_CREDIT: "C"}
CHANNELS = frozenset(v for v in types_pb2.Channel.values() if v)
LOAN_TYPES = frozenset(v for v in types_pb2.LoanType.values() if v)

# Return codes of POSTING-REPLY and EOD-REPLY.
RC_OK = 0
RC_UNBALANCED = 8
RC_UNKNOWN_ACCOUNT = 12
RC_CONTROL_TOTALS = 16
RC_LEDGER_MISMATCH = 20
RC_MALFORMED = 24


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


def record_type(frame: bytes) -> str:
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


def imbalance(entries) -> dict[str, int]:
    """Debits minus credits per currency, for the currencies that do not balance."""
    net: dict[str, int] = {}
    for entry in entries:
        net[entry.currency] = net.get(entry.currency, 0) + (entry.amount if entry.side == "D" else -entry.amount)
    return {currency: amount for currency, amount in net.items() if amount}
