"""`paymesh reconcile --date YYYY-MM-DD`: does the day agree, to the cent?

Each source reports the day's movements tallied at one grain (channel, loan type,
payment or reversal, currency) -> (count, amount in minor units). Sources belong
to a stage of the payment's path:

  accepted by router   the router's journal (PaymentOperationsService.SummarizePayments)
  applied by cores     each core's ListAppliedPayments (bank.loans.v1)
  sent to ledger       the bridge's postings, queued or posted (GetLedgerSummary)
  posted by mainframe  the bridge's postings the mainframe confirmed
  confirmed            the confirmation log (SummarizeConfirmations)

Stages are compared per channel and per core, for the loan types every stage
covers completely. A source that cannot answer is reported as "source
unavailable" and its loan types are left out of the comparison. A new source
is a class with the same three attributes and one method.

Exit code: 0 everything agrees, 1 any break, 2 no break but a source was
unavailable (the reconciliation is incomplete).
"""

import argparse
import asyncio
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

import grpc

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_pb2
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loan_core_service_pb2_grpc as core_grpc
from bank.payments.v1 import payment_operations_service_pb2 as ops_pb2
from bank.payments.v1 import payment_operations_service_pb2_grpc as ops_grpc
from paymesh import tls
from paymesh.config import Settings, address_of
from paymesh.textui import format_table
from paymesh.topology import OPERATOR

Grain = tuple[int, int, bool, str]  # channel, loan type, reversal, currency
Tallies = dict[Grain, tuple[int, int]]  # -> (count, amount in minor units)
CORES = {"core-cash": types_pb2.LOAN_TYPE_CASH, "core-mortgage": types_pb2.LOAN_TYPE_MORTGAGE,
         "core-vehicle": types_pb2.LOAN_TYPE_VEHICLE}
ALL_LOAN_TYPES = frozenset(CORES.values())
CALL_TIMEOUT = 30.0
NOT_ANSWERING = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.PERMISSION_DENIED)


class SourceUnavailable(Exception):
    pass


class Source(Protocol):
    name: str
    stage: str
    loan_types: frozenset[int]  # what it speaks for

    async def tallies(self, business_date: str) -> Tallies: ...


def _add(tallies: Tallies, grain: Grain, count: int, amount: int) -> None:
    old_count, old_amount = tallies.get(grain, (0, 0))
    tallies[grain] = (old_count + count, old_amount + amount)


@dataclass
class CoreSource:
    """What one loan core applied (and reversed) on the day."""

    name: str
    settings: Settings
    stage: str = "applied by cores"

    @property
    def loan_types(self) -> frozenset[int]:
        return frozenset([CORES[self.name]])

    async def tallies(self, business_date: str) -> Tallies:
        tallies: Tallies = {}
        async with tls.channel_for(address_of(self.name), self.settings.pki_dir, OPERATOR) as channel:
            stub = core_grpc.LoanCoreServiceStub(channel)
            token = ""
            while True:
                page = await _call(stub.ListAppliedPayments, core_pb2.ListAppliedPaymentsRequest(
                    business_date=business_date, page_size=10_000, page_token=token))
                for m in page.movements:
                    _add(tallies, (m.channel, CORES[self.name], m.reversal, m.amount.currency_code),
                         1, m.amount.amount_minor)
                token = page.next_page_token
                if not token:
                    return tallies


@dataclass
class LedgerSource:
    """The bridge's postings of the day in the given statuses."""

    name: str
    stage: str
    statuses: frozenset[int]
    settings: Settings
    loan_types: frozenset[int] = ALL_LOAN_TYPES

    async def tallies(self, business_date: str) -> Tallies:
        async with tls.channel_for(address_of("mainframe-bridge"), self.settings.pki_dir, OPERATOR) as channel:
            summary = await _call(bridge_grpc.MainframeBridgeServiceStub(channel).GetLedgerSummary,
                                  bridge_pb2.GetLedgerSummaryRequest(business_date=business_date))
        tallies: Tallies = {}
        for line in summary.lines:
            if line.status in self.statuses:
                _add(tallies, (line.channel, line.loan_type, line.reversal, line.amount.currency_code),
                     line.posting_count, line.amount.amount_minor)
        return tallies


# A payment's final status -> the movements it stands for (reversal?): a reversed
# payment was applied and then undone, two movements at its core.
_MOVEMENTS = {
    types_pb2.PAYMENT_STATUS_ACCEPTED: (False,),  # accepted, not yet applied: a break until it is
    types_pb2.PAYMENT_STATUS_APPLIED: (False,),
    types_pb2.PAYMENT_STATUS_REVERSED: (False, True),
}


@dataclass
class RouterSource:
    """What the router accepted from the channels (refusals and core rejections apart)."""

    settings: Settings
    name: str = "payment-router"
    stage: str = "accepted by router"
    loan_types: frozenset[int] = ALL_LOAN_TYPES

    async def tallies(self, business_date: str) -> Tallies:
        async with tls.channel_for(address_of("payment-router"), self.settings.pki_dir, OPERATOR) as channel:
            summary = await _call(ops_grpc.PaymentOperationsServiceStub(channel).SummarizePayments,
                                  ops_pb2.SummarizePaymentsRequest(business_date=business_date))
        tallies: Tallies = {}
        for t in summary.totals:
            for reversal in _MOVEMENTS.get(t.status, ()):
                _add(tallies, (t.channel, t.loan_type, reversal, t.amount.currency_code), t.count, t.amount.amount_minor)
        return tallies


@dataclass
class ConfirmationSource:
    """What was confirmed to the channels: applied payments and reversals."""

    settings: Settings
    name: str = "confirmations"
    stage: str = "confirmed"
    loan_types: frozenset[int] = ALL_LOAN_TYPES

    async def tallies(self, business_date: str) -> Tallies:
        async with tls.channel_for(address_of("confirmations"), self.settings.pki_dir, OPERATOR) as channel:
            summary = await _call(conf_grpc.ConfirmationServiceStub(channel).SummarizeConfirmations,
                                  conf_pb2.SummarizeConfirmationsRequest(business_date=business_date))
        tallies: Tallies = {}
        kinds = {types_pb2.PAYMENT_STATUS_APPLIED: False, types_pb2.PAYMENT_STATUS_REVERSED: True}
        for t in summary.totals:
            if t.status in kinds:
                _add(tallies, (t.channel, t.loan_type, kinds[t.status], t.amount.currency_code),
                     t.count, t.amount.amount_minor)
        return tallies


def default_sources(settings: Settings) -> list[Source]:
    queued, posted = ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED
    return [
        RouterSource(settings),
        *(CoreSource(name, settings) for name in CORES),
        LedgerSource("mainframe-bridge (queued+posted)", "sent to ledger", frozenset([queued, posted]), settings),
        LedgerSource("mainframe-bridge (posted)", "posted by mainframe", frozenset([posted]), settings),
        ConfirmationSource(settings),
    ]


async def _call(method, request):
    try:
        return await method(request, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        if error.code() in NOT_ANSWERING:
            raise SourceUnavailable(f"{error.code().name}: {error.details()}") from error
        raise


@dataclass
class Outcome:
    rows: list[tuple]  # CHECK, KIND, CURRENCY, one "count / amount" per stage, STATUS
    stages: list[str]
    breaks: int
    unavailable: list[tuple[str, str]]  # (source, why)
    left_out: frozenset[int]  # loan types not compared

    @property
    def exit_code(self) -> int:
        return 1 if self.breaks else 2 if self.unavailable or len(self.stages) < 2 else 0


async def reconcile(sources: list[Source], business_date: str) -> Outcome:
    async def ask(source: Source):
        try:
            return await source.tallies(business_date)
        except SourceUnavailable as why:
            return why
        except (grpc.aio.AioRpcError, OSError) as error:
            return SourceUnavailable(str(error))

    answers = await asyncio.gather(*(ask(s) for s in sources))
    stages: dict[str, Tallies] = {}
    covered: dict[str, set[int]] = defaultdict(set)  # per stage: loan types every source of it answered for
    missing: dict[str, set[int]] = defaultdict(set)
    unavailable = []
    for source, answer in zip(sources, answers):
        if isinstance(answer, SourceUnavailable):
            unavailable.append((source.name, str(answer)))
            missing[source.stage] |= source.loan_types
            continue
        covered[source.stage] |= source.loan_types
        for grain, (count, amount) in answer.items():
            _add(stages.setdefault(source.stage, {}), grain, count, amount)
        stages.setdefault(source.stage, {})
    # A stage with nothing complete drops out; the others are compared on what they all cover.
    complete = {stage: covered[stage] - missing[stage] for stage in stages}
    stages = {stage: tallies for stage, tallies in stages.items() if complete[stage]}
    compared = frozenset(set.intersection(*(complete[s] for s in stages))) if stages else frozenset()
    rows, breaks = _compare(stages, compared)
    return Outcome(rows, list(stages), breaks, unavailable, ALL_LOAN_TYPES - compared)


def _compare(stages: dict[str, Tallies], loan_types: frozenset[int]) -> tuple[list[tuple], int]:
    rolled: dict[tuple, dict[str, tuple[int, int]]] = defaultdict(dict)
    for stage, tallies in stages.items():
        for (channel, loan_type, reversal, currency), (count, amount) in tallies.items():
            if loan_type not in loan_types:
                continue
            kind = "reversals" if reversal else "payments"
            for check in (f"channel {_name(types_pb2.Channel, channel)}", f"core {_name(types_pb2.LoanType, loan_type)}"):
                old = rolled[(check, kind, currency)].get(stage, (0, 0))
                rolled[(check, kind, currency)][stage] = (old[0] + count, old[1] + amount)
    rows, breaks = [], 0
    for key in sorted(rolled):
        values = [rolled[key].get(stage, (0, 0)) for stage in stages]
        agree = len(set(values)) == 1
        breaks += not agree
        rows.append((*key, *(f"{count} / {_money(amount)}" for count, amount in values), "ok" if agree else "BREAK"))
    return rows, breaks


def _name(enum, value: int) -> str:
    """CHANNEL_INTERNET_BANKING -> internet-banking, LOAN_TYPE_CASH -> cash."""
    if value not in enum.values():
        return str(value)
    prefix = "CHANNEL_" if enum is types_pb2.Channel else "LOAN_TYPE_"
    return enum.Name(value).removeprefix(prefix).lower().replace("_", "-")


def _money(minor: int) -> str:
    """Minor units as a decimal amount, by integer arithmetic (PEN and USD have 2 decimals)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def report(outcome: Outcome, business_date: str, show_all: bool) -> str:
    lines = [f"reconciliation of {business_date}"]
    for source, why in outcome.unavailable:
        lines.append(f"source unavailable: {source} ({why})")
    if outcome.left_out:
        names = ", ".join(sorted(_name(types_pb2.LoanType, t) for t in outcome.left_out))
        lines.append(f"not compared (a source for them is unavailable): {names}")
    shown = [row for row in outcome.rows if show_all or row[-1] != "ok"]
    if len(outcome.stages) < 2:
        lines.append("nothing to compare: fewer than two stages answered")
    elif shown:
        header = ("CHECK", "KIND", "CURRENCY", *(s.upper() for s in outcome.stages), "STATUS")
        lines.append(format_table([header, *shown]))
    lines.append(f"{outcome.breaks} breaks, {len(outcome.rows) - outcome.breaks} checks agree")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--date", required=True, type=_date, help="business date, YYYY-MM-DD")
    parser.add_argument("--all", action="store_true", help="show the checks that agree too")


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def run(args) -> int:
    settings = Settings.from_env()
    outcome = asyncio.run(reconcile(default_sources(settings), args.date))
    print(report(outcome, args.date, args.all))
    return outcome.exit_code
