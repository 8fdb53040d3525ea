"""The end-of-day batch file: fixed-length EBCDIC records (LRECL 200) per the
copybook: one EOD-HEADER (with when it was built and its sequence number), an
EOD-DETAIL per ledger entry posted on the day, one EOD-TRAILER with the record
counts per type, the debit and credit control totals per currency and a hash
total. Both sides use this module: the bridge writes, the emulator checks.
"""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from mainframe_bridge.codec import RecordError
from mainframe_bridge.records import (
    EOD_DETAIL, EOD_HEADER, EOD_TRAILER, RC_CONTROL_TOTALS, RC_HASH_TOTAL, RC_MALFORMED, RC_OK, RC_RECORD_COUNTS,
    Entry, record_type,
)

LRECL = EOD_DETAIL.size
assert EOD_HEADER.size == EOD_TRAILER.size == LRECL, "EOD records must share one record length"
MAX_CURRENCIES = len(EOD_TRAILER.decode(EOD_TRAILER.encode({}))["ET-TOTALS"])
HASH_DIGITS = EOD_TRAILER.item("ET-HASH-TOTAL").digits
# The bank's clock: the mainframe team reads creation times as Lima time.
BANK_TIME_ZONE = ZoneInfo("America/Lima")


@dataclass(frozen=True)
class Detail:
    posting_id: str
    entry: Entry
    channel: int
    loan_type: int


@dataclass(frozen=True)
class EodFile:
    business_date: int
    file_name: str
    created: datetime  # in BANK_TIME_ZONE, to the second
    sequence: int
    details: list[Detail]
    # What the trailer says:
    header_count: int
    detail_count: int
    trailer_count: int
    record_count: int  # every record of the file
    totals: dict[str, tuple[int, int]]  # currency -> (debits, credits)
    hash_total: int


def file_name(business_date: int) -> str:
    """GLPOST.DYYMMDD: a z/OS dataset name qualifier holds at most 8 characters."""
    return f"GLPOST.D{business_date % 1_000_000:06d}"


def control_totals(details: list[Detail]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = {}
    for detail in details:
        pair = totals.setdefault(detail.entry.currency, [0, 0])
        pair[0 if detail.entry.side == "D" else 1] += detail.entry.amount
    return {currency: (debit, credit) for currency, (debit, credit) in sorted(totals.items())}


def hash_total(details: list[Detail]) -> int:
    """As ACH's entry hash: the accounts' digits read as numbers, summed, the low-order digits kept."""
    return sum(int("".join(filter(str.isdigit, d.entry.account)) or 0) for d in details) % 10 ** HASH_DIGITS


def build(business_date: int, details: list[Detail], created: datetime, sequence: int) -> bytes:
    """The file's bytes; the same arguments give the same bytes (created must carry its time zone)."""
    if created.tzinfo is None:
        raise ValueError("created needs a time zone: the file says Lima time")
    totals = control_totals(details)
    if len(totals) > MAX_CURRENCIES:
        raise RecordError(f"{len(totals)} currencies; the trailer holds at most {MAX_CURRENCIES}")
    local = created.astimezone(BANK_TIME_ZONE)
    records = [EOD_HEADER.encode({
        "EH-BUSINESS-DATE": business_date, "EH-FILE-NAME": file_name(business_date),
        "EH-CREATION-DATE": int(local.strftime("%Y%m%d")), "EH-CREATION-TIME": int(local.strftime("%H%M%S")),
        "EH-FILE-SEQUENCE": sequence,
    })]
    for detail in details:
        e = detail.entry
        records.append(EOD_DETAIL.encode({
            "ED-POSTING-ID": detail.posting_id, "ED-ENTRY-ID": e.entry_id, "ED-ACCOUNT": e.account,
            "ED-SIDE": e.side, "ED-CURRENCY": e.currency, "ED-AMOUNT": e.amount,
            "ED-CHANNEL": detail.channel, "ED-LOAN-TYPE": detail.loan_type,
        }))
    records.append(EOD_TRAILER.encode({
        "ET-HEADER-COUNT": 1, "ET-DETAIL-COUNT": len(details), "ET-TRAILER-COUNT": 1,
        "ET-RECORD-COUNT": len(details) + 2,
        "ET-TOTALS": [{"ET-CURRENCY": c, "ET-DEBIT-TOTAL": d, "ET-CREDIT-TOTAL": k} for c, (d, k) in totals.items()],
        "ET-HASH-TOTAL": hash_total(details),
    }))
    return b"".join(records)


def read(data: bytes) -> EodFile:
    """Parses a whole file; RecordError if it is not header, details, trailer."""
    if len(data) < 2 * LRECL or len(data) % LRECL:
        raise RecordError(f"an EOD file is whole {LRECL}-byte records, header and trailer included; got {len(data)}")
    header = EOD_HEADER.decode(data, 0)
    trailer = EOD_TRAILER.decode(data, len(data) - LRECL)
    details = []
    for values in EOD_DETAIL.decode_many(data, LRECL, len(data) // LRECL - 2):
        details.append(Detail(
            values["ED-POSTING-ID"],
            Entry(values["ED-ENTRY-ID"], values["ED-ACCOUNT"], values["ED-SIDE"], values["ED-CURRENCY"],
                  values["ED-AMOUNT"]),
            values["ED-CHANNEL"], values["ED-LOAN-TYPE"],
        ))
    try:
        created = datetime.strptime(f"{header['EH-CREATION-DATE']:08d}{header['EH-CREATION-TIME']:06d}",
                                    "%Y%m%d%H%M%S").replace(tzinfo=BANK_TIME_ZONE)
    except ValueError as bad:
        raise RecordError(f"EH-CREATION-DATE/-TIME is no date and time: {bad}") from None
    totals = {row["ET-CURRENCY"]: (row["ET-DEBIT-TOTAL"], row["ET-CREDIT-TOTAL"])
              for row in trailer["ET-TOTALS"] if row["ET-CURRENCY"]}
    return EodFile(header["EH-BUSINESS-DATE"], header["EH-FILE-NAME"], created, header["EH-FILE-SEQUENCE"], details,
                   trailer["ET-HEADER-COUNT"], trailer["ET-DETAIL-COUNT"], trailer["ET-TRAILER-COUNT"],
                   trailer["ET-RECORD-COUNT"], totals, trailer["ET-HASH-TOTAL"])


def check_totals(eod: EodFile) -> tuple[int, str]:
    """The header's name, then the trailer against the details it closes: counts, hash total, control
    totals, then balance."""
    if eod.file_name != file_name(eod.business_date):
        return RC_MALFORMED, f"header names {eod.file_name}, the file of its date is {file_name(eod.business_date)}"
    if (eod.header_count, eod.trailer_count) != (1, 1):
        return RC_RECORD_COUNTS, f"trailer counts {eod.header_count} headers and {eod.trailer_count} trailers, not 1"
    if eod.detail_count != len(eod.details):
        return RC_RECORD_COUNTS, f"trailer counts {eod.detail_count} details, the file has {len(eod.details)}"
    if eod.record_count != len(eod.details) + 2:
        return RC_RECORD_COUNTS, f"trailer counts {eod.record_count} records, the file has {len(eod.details) + 2}"
    if eod.hash_total != hash_total(eod.details):
        return RC_HASH_TOTAL, f"trailer hash total {eod.hash_total} is not the details' {hash_total(eod.details)}"
    actual = control_totals(eod.details)
    if actual != dict(sorted(eod.totals.items())):
        return RC_CONTROL_TOTALS, "trailer control totals do not match the detail records"
    for currency, (debit, credit) in actual.items():
        if debit != credit:
            return RC_CONTROL_TOTALS, f"debits {debit} and credits {credit} differ in {currency}"
    return RC_OK, "control totals agree"


def is_last_record(data: bytes | bytearray) -> bool:
    """Whether data (whole records) ends with the trailer."""
    return len(data) >= LRECL and len(data) % LRECL == 0 and record_type(data[-LRECL:]) == "EODT"
