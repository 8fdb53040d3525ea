"""Ledger traffic for the bridge's bench and tests: real balanced postings on the chart of accounts,
sent as the router sends them (PostEntries), and the emulator's own book to compare with."""

import asyncio
import sqlite3
from pathlib import Path

from bank.common.v1 import types_pb2
from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from paymesh import chart_of_accounts as coa
from paymesh import tls
from paymesh.topology import ROUTER, Identity

DATE = "2025-03-31"
DEBIT, CREDIT = ledger_pb2.ENTRY_SIDE_DEBIT, ledger_pb2.ENTRY_SIDE_CREDIT


def posting(n: int, amount: int = 10_000, channel: types_pb2.Channel = types_pb2.CHANNEL_ATM,
            loan_type: types_pb2.LoanType = types_pb2.LOAN_TYPE_CASH, date: str = DATE, currency: str = "PEN",
            reversal: bool = False, prefix: str = "pst") -> ledger_pb2.Posting:
    """A balanced loan-payment movement: the channel's clearing account against interest and principal."""
    interest = amount // 4
    lines = [(coa.channel_clearing(channel), DEBIT, amount),
             (coa.product_account(coa.INTEREST_INCOME, loan_type), CREDIT, interest),
             (coa.product_account(coa.LOAN_PRINCIPAL, loan_type), CREDIT, amount - interest)]
    if reversal:
        lines = [(account, CREDIT if side == DEBIT else DEBIT, value) for account, side, value in lines]
    posting_id = f"{prefix}-{n:07d}"
    return ledger_pb2.Posting(
        posting_id=posting_id, business_date=date, payment_id=f"pay-{n:07d}", channel=channel, loan_type=loan_type,
        entries=[ledger_pb2.LedgerEntry(entry_id=f"{posting_id}:{i}", account=account, side=side,
                                        amount=types_pb2.Money(currency_code=currency, amount_minor=value))
                 for i, (account, side, value) in enumerate(lines, 1)],
    )


def traceparent(n: int, sampled: bool = False) -> str:
    """A W3C traceparent of a trace of its own, as the router sends beside each item: not sampled
    unless the mesh exports traces (see docs/observability.md)."""
    return f"00-{n + 1:032x}-{n + 1:016x}-{'01' if sampled else '00'}"


def stub(address: str, pki_dir: Path, identity: Identity = ROUTER):
    channel = tls.channel_for(address, pki_dir, identity)
    return channel, bridge_grpc.MainframeBridgeServiceStub(channel)


async def post_all(bridge_stub, postings, per_message: int = 250,
                   traceparents: list[str] | None = None) -> dict[str, bridge_pb2.PostingAck]:
    """Sends the postings on one PostEntries stream (each with its traceparent, if given, as the
    router sends them); the ack of each, by posting id."""
    requests = [bridge_pb2.PostEntriesRequest(postings=postings[i:i + per_message],
                                              traceparents=traceparents[i:i + per_message] if traceparents else ())
                for i in range(0, len(postings), per_message)]
    call = bridge_stub.PostEntries(iter(requests), timeout=60)
    acks = {}
    async for response in call:
        for ack in response.acks:
            acks[ack.posting_id] = ack
    return acks


async def posted_count(bridge_stub, date: str = DATE) -> dict[int, int]:
    summary = await bridge_stub.GetLedgerSummary(bridge_pb2.GetLedgerSummaryRequest(business_date=date), timeout=10)
    counts: dict[int, int] = {}
    for line in summary.lines:
        counts[line.status] = counts.get(line.status, 0) + line.posting_count
    return counts


async def wait_until_posted(bridge_stub, expected: int, timeout: float = 30.0, date: str = DATE) -> dict[int, int]:
    """Polls the summary until `expected` postings of the date are POSTED."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        counts = await posted_count(bridge_stub, date)
        if counts.get(ledger_pb2.POSTING_STATUS_POSTED, 0) >= expected or loop.time() > deadline:
            return counts
        await asyncio.sleep(0.05)


def emulator_book(home: Path) -> list[tuple[str, int]]:
    """(posting id, return code) of everything the emulator ever recorded, in arrival order."""
    connection = sqlite3.connect(home / "data" / "mainframe-emulator.db")
    try:
        return connection.execute("SELECT posting_id, return_code FROM postings ORDER BY seq").fetchall()
    finally:
        connection.close()
