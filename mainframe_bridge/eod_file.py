"""The end-of-day batch file: fixed-length EBCDIC records (LRECL 200) per the
copybook: one EOD-HEADER, an EOD-DETAIL per ledger entry posted on the day,
one EOD-TRAILER with the detail count and the debit and credit control totals
per currency. Both sides use this module: the bridge writes, the emulator checks.
"""

from dataclasses import dataclass

from mainframe_bridge.codec import RecordError
from mainframe_bridge.records import (
    EOD_DETAIL, EOD_HEADER, EOD_TRAILER, RC_CONTROL_TOTALS, RC_OK, Entry, record_type,
)

LRECL = EOD_DETAIL.size
assert EOD_HEADER.size == EOD_TRAILER.size == LRECL, "EOD records must share one record length"
MAX_CURRENCIES = len(EOD_TRAILER.decode(EOD_TRAILER.encode({}))["ET-TOTALS"])


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
    details: list[Detail]
    record_count: int  # as the trailer says
    totals: dict[str, tuple[int, int]]  # as the trailer says: currency -> (debits, credits)


def file_name(business_date: int) -> str:
    return f"GLPOST.D{business_date}"


def control_totals(details: list[Detail]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = {}
    for detail in details:
        pair = totals.setdefault(detail.entry.currency, [0, 0])
        pair[0 if detail.entry.side == "D" else 1] += detail.entry.amount
    return {currency: (debit, credit) for currency, (debit, credit) in sorted(totals.items())}


def build(business_date: int, details: list[Detail]) -> bytes:
    totals = control_totals(details)
    if len(totals) > MAX_CURRENCIES:
        raise RecordError(f"{len(totals)} currencies; the trailer holds at most {MAX_CURRENCIES}")
    records = [EOD_HEADER.encode({"EH-BUSINESS-DATE": business_date, "EH-FILE-NAME": file_name(business_date)})]
    for detail in details:
        e = detail.entry
        records.append(EOD_DETAIL.encode({
            "ED-POSTING-ID": detail.posting_id, "ED-ENTRY-ID": e.entry_id, "ED-ACCOUNT": e.account,
            "ED-SIDE": e.side, "ED-CURRENCY": e.currency, "ED-AMOUNT": e.amount,
            "ED-CHANNEL": detail.channel, "ED-LOAN-TYPE": detail.loan_type,
        }))
    records.append(EOD_TRAILER.encode({
        "ET-RECORD-COUNT": len(details),
        "ET-TOTALS": [{"ET-CURRENCY": c, "ET-DEBIT-TOTAL": d, "ET-CREDIT-TOTAL": k} for c, (d, k) in totals.items()],
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
    totals = {row["ET-CURRENCY"]: (row["ET-DEBIT-TOTAL"], row["ET-CREDIT-TOTAL"])
              for row in trailer["ET-TOTALS"] if row["ET-CURRENCY"]}
    return EodFile(header["EH-BUSINESS-DATE"], header["EH-FILE-NAME"], details, trailer["ET-RECORD-COUNT"], totals)


def check_totals(eod: EodFile) -> tuple[int, str]:
    """The trailer against the details it closes: count, then totals, then balance."""
    if eod.record_count != len(eod.details):
        return RC_CONTROL_TOTALS, f"trailer counts {eod.record_count} records, the file has {len(eod.details)}"
    actual = control_totals(eod.details)
    if actual != dict(sorted(eod.totals.items())):
        return RC_CONTROL_TOTALS, "trailer control totals do not match the detail records"
    for currency, (debit, credit) in actual.items():
        if debit != credit:
            return RC_CONTROL_TOTALS, f"debits {debit} and credits {credit} differ in {currency}"
    return RC_OK, "control totals agree"


def is_last_record(data: bytes) -> bool:
    """Whether data (whole records) ends with the trailer."""
    return len(data) >= LRECL and len(data) % LRECL == 0 and record_type(data[-LRECL:]) == "EODT"
