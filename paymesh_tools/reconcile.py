"""`paymesh reconcile --date YYYY-MM-DD`: does the day agree, item by item, to the cent?

Every stage of a payment's path lists its ITEMS of the day, and the items are
matched by (payment id, kind) across the stages, kind being "payment",
"reversal" or "revision". Totals alone hide a cent moved from one payment to
another; items do not.

A revision: the reversal of an earlier payment of a loan applied its later
payments again, and this one's allocation changed. It moves no money (amount
0); its split is the change, parts up or down (summing to zero). Its id is the
payment's with ":R<n>": the core's revision movement, the ledger's posting of
the difference and the revision's confirmation all carry it. The router
forwards it but keeps no item of its own (its journal holds the payment and the
reversal), so it is not looked for there.

  accepted by router   the router's journal (PaymentOperationsService.ListPayments); where there are
                       several journals (prod: one a bulkhead), each one's (PAYMESH_ROUTER_JOURNAL_ADDRS)
  applied by cores     each core's ListAppliedPayments (bank.loans.v1)
  sent to ledger       the bridge's postings, queued or posted (ListPostings)
  posted by mainframe  the bridge's postings the mainframe confirmed
  mainframe book       what the mainframe itself booked (ListMainframeBook)
  confirmed            the confirmation log (ListConfirmations)

The module has two halves: sources, which ask a service over mTLS (as the
operator) and turn its answer into Items; and `match`, a pure function from
the items of each stage to an Outcome, which is where every rule lives.

Per item: present at every stage, once; the same amount and currency; the
same split (principal incl. prepayment, interest, penalty interest, fees,
insurance). Each item checked is one check, and an item that fails any of
them is one break naming its payment id and the stages at odds. Besides the
items: a balance check per core and currency (the core's principal against
the loan principal accounts in the mainframe's book), one check each.

Late items: a posting whose day was already closed when it reached the bridge
is booked in the next open day. It is an item of its original day, booked in
a later one: not a break, listed. It is matched in both days' runs: in its
original day against the mainframe's book of the day it was booked in, and in
its booking day against the other stages' items of its original day.

Not breaks, listed for a person to look at: duplicate suspects, payments to
the same loan of the same amount from the same channel within 10 minutes
under different idempotency keys (a customer who paid twice, or a channel
that retried with a new key).

A source that cannot answer is reported as "source unavailable" and its loan
types are left out of the comparison. A new source is a class with `name`,
`stage`, `loan_types` and `async items(business_date) -> list[Item]`.

Exit code: 0 everything agrees, 1 any break, 2 no break but a source was
unavailable or fewer than two stages answered (the reconciliation is incomplete).
"""

import asyncio
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

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
from paymesh import chart_of_accounts as coa
from paymesh import tls
from paymesh.business_calendar import date_argument
from paymesh.config import Settings, address_of
from paymesh_tools.textui import format_table
from paymesh.topology import CORE_OF, OPERATOR

# The stages, in the order a payment goes through them (the report's column order). Callers
# pick sources by these names (paymesh_tools/simulate_day.py), so they stay as they are.
ROUTER = "accepted by router"
CORES_STAGE = "applied by cores"
SENT = "sent to ledger"
POSTED = "posted by mainframe"
BOOK = "mainframe book"
CONFIRMED = "confirmed"
STAGES = (ROUTER, CORES_STAGE, SENT, POSTED, BOOK, CONFIRMED)
LEDGER_STAGES = frozenset([SENT, POSTED])  # the bridge's: they know each posting's original date

PAYMENT, REVERSAL, REVISION = "payment", "reversal", "revision"
CORES = {core: loan_type for loan_type, core in CORE_OF.items()}
ALL_LOAN_TYPES = frozenset(CORES.values())
DUPLICATE_WINDOW_SECONDS = 10 * 60
CALL_TIMEOUT = 30.0
NOT_ANSWERING = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.PERMISSION_DENIED)
DETAIL_LINES = 50  # per list in the report without --all: a bad day must still read at a glance
SUSPECT_LINES = 10  # suspects are not breaks: a sample, with the count


class Split(NamedTuple):
    """How an amount was spent, in minor units. Principal includes prepayment: the ledger has
    one principal account per product, so that is the finest split every stage can tell."""

    principal: int = 0
    interest: int = 0
    penalty: int = 0
    fees: int = 0
    insurance: int = 0
    overpayment: int = 0  # beyond a payoff, in cash: held on the customer credit account


class Item(NamedTuple):
    """One movement as one stage saw it: a payment or its reversal."""

    stage: str
    source: str  # the source that reported it (which core, ...)
    payment_id: str
    kind: str  # PAYMENT, REVERSAL or REVISION (whose payment_id is the revision's id, "<payment id>:R<n>")
    channel: types_pb2.Channel
    loan_type: types_pb2.LoanType
    currency: str
    amount: int  # minor units
    split: Split
    booked_date: str  # the business day it is booked in (at the mainframe, for the ledger stages)
    original_date: str = ""  # the day its core gave it, when the stage knows (the ledger stages)
    loan_id: str = ""  # where the stage knows it (router, cores)
    ref: str = ""  # the stage's own id for it: movement or posting id
    pending: bool = False  # router only: accepted, its core has not answered yet
    idempotency_key: str = ""  # router only, for duplicate suspects
    accept_time: int | None = None  # router only: epoch seconds

    @property
    def key(self) -> tuple[str, str]:
        return self.payment_id, self.kind

    @property
    def late(self) -> bool:
        return bool(self.original_date and self.booked_date and self.original_date != self.booked_date)


class Problem(NamedTuple):
    what: str  # "missing", "twice", "amount differs", ...
    stages: tuple[str, ...]  # the stages at odds
    detail: str = ""


class Break(NamedTuple):
    """One item that does not agree: every problem found with it."""

    payment_id: str
    kind: str
    problems: tuple[Problem, ...]

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(s for s in STAGES if any(s in p.stages for p in self.problems))


class LateItem(NamedTuple):
    payment_id: str
    kind: str
    original_date: str
    booked_date: str

    def __str__(self) -> str:
        return f"late item of {self.original_date} booked in {self.booked_date}"


class Balance(NamedTuple):
    core: str
    currency: str
    core_principal: int  # net: payments minus reversals
    book_principal: int  # net credits to the product's loan principal account (1401xx)

    @property
    def agrees(self) -> bool:
        return self.core_principal == self.book_principal


class Suspect(NamedTuple):
    loan_id: str
    channel: types_pb2.Channel
    currency: str
    amount: int
    payment_ids: tuple[str, ...]  # in the order accepted
    seconds_apart: int  # from the first to the last


@dataclass
class Outcome:
    stages: list[str]  # those compared, in path order
    breaks: int  # item breaks plus balance rows that differ
    checks: int  # items checked plus balance rows
    item_breaks: list[Break] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)  # kind -> items that agree at every stage
    late_items: list[LateItem] = field(default_factory=list)
    balance: list[Balance] = field(default_factory=list)
    suspects: list[Suspect] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)  # CHECK, KIND, CURRENCY, "count / amount" per stage, STATUS
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    left_out: frozenset[types_pb2.LoanType] = frozenset()  # loan types not compared

    @property
    def exit_code(self) -> int:
        return 1 if self.breaks else 2 if self.unavailable or len(self.stages) < 2 else 0


# --- matching: pure, no I/O ------------------------------------------------------------------


def match(items_by_stage: dict[str, list[Item]], business_date: str, *,
          unavailable: Iterable[tuple[str, str]] = (), left_out: frozenset[types_pb2.LoanType] = frozenset()
          ) -> Outcome:
    """The day's Outcome from the items each stage reported (stages that did not answer are
    absent; items of the loan types in left_out are not compared)."""
    by_stage = {stage: [i for i in items_by_stage[stage] if i.loan_type not in left_out]
                for stage in sorted(items_by_stage, key=_stage_order)}
    stages = list(by_stage)
    outcome = Outcome(stages, 0, 0, unavailable=list(unavailable), left_out=frozenset(left_out),
                      matched={PAYMENT: 0, REVERSAL: 0, REVISION: 0})
    every_item = [i for items in by_stage.values() for i in items]
    outcome.late_items = _late_items(every_item)
    outcome.suspects = _duplicate_suspects(by_stage.get(ROUTER, []), business_date)
    if len(stages) < 2:  # nothing to compare against
        return outcome
    outcome.rows = _totals(by_stage)

    grouped: dict[tuple[str, str], dict[str, list[Item]]] = defaultdict(lambda: defaultdict(list))
    for item in every_item:
        grouped[item.key][item.stage].append(item)
    for key in sorted(grouped):
        problems = _check_item(grouped[key], stages)
        if problems:
            outcome.item_breaks.append(Break(*key, tuple(problems)))
        else:
            outcome.matched[key[1]] += 1

    outcome.balance = _balance(by_stage, business_date)
    outcome.checks = len(grouped) + len(outcome.balance)
    outcome.breaks = len(outcome.item_breaks) + sum(not row.agrees for row in outcome.balance)
    return outcome


def _check_item(at: dict[str, list[Item]], stages: list[str]) -> list[Problem]:
    """What is wrong with one item (payment id, kind), given its items per stage."""
    problems = []
    router = at.get(ROUTER, [])
    if any(i.pending for i in router):
        downstream = [s for s in stages if s != ROUTER and at.get(s)]
        if not downstream:  # the usual case: its core has not answered yet
            return [Problem("accepted, not applied", (ROUTER,), "the router still waits for its core")]
        problems.append(Problem("accepted, not applied at the router", (ROUTER,),
                                "still ACCEPTED there, though " + ", ".join(downstream) + " have it"))
        at = {s: items for s, items in at.items() if s != ROUTER}  # compare what the others say
    present = [s for s in stages if at.get(s)]
    revision = any(i.kind == REVISION for items in at.values() for i in items)
    missing = [s for s in stages if s not in present and not (s == ROUTER and (router or revision))]
    if missing:
        problems.append(Problem("missing", tuple(missing), "present at " + ", ".join(present)))
    for stage in present:
        if len(at[stage]) > 1:
            refs = ", ".join(f"{i.source} {i.ref}".strip() for i in at[stage])
            problems.append(Problem("twice" if len(at[stage]) == 2 else f"{len(at[stage])} times",
                                    (stage,), refs))
    money = {s: [(i.currency, i.amount) for i in at[s]] for s in present}
    odd = _odd_ones(money)
    if odd:
        currencies = {c for values in money.values() for c, _ in values}
        what = "currency differs" if len(currencies) > 1 else "amount differs"
        problems.append(Problem(what, odd, _by_value(money, lambda v: f"{_money(v[1])} {v[0]}")))
    splits = {s: [i.split for i in at[s]] for s in present}
    odd = _odd_ones(splits)
    if odd:
        problems.append(Problem("split differs", odd, _by_value(splits, _split_text)))
    return problems


def _odd_ones(values: dict[str, list]) -> tuple[str, ...]:
    """The stages whose value is not the one most stages report (every stage, on a tie)."""
    first = {stage: vs[0] for stage, vs in values.items()}
    inconsistent = [stage for stage, vs in values.items() if len(set(vs)) > 1]  # twice, differently
    counts = Counter(first.values())
    if len(counts) == 1:
        return tuple(inconsistent)
    (common, n), (_, runner_up) = counts.most_common(2)
    if n == runner_up:
        return tuple(values)
    return tuple(s for s in values if first[s] != common or s in inconsistent)


def _by_value(values: dict[str, list], show) -> str:
    """ "100.01 PEN at applied by cores; 100.00 PEN at the other stages": the odd values first."""
    stages_of: dict[object, list[str]] = defaultdict(list)
    for stage, vs in values.items():
        for v in dict.fromkeys(vs):
            stages_of[v].append(stage)
    groups = sorted(stages_of.items(), key=lambda group: len(group[1]))
    parts = [f"{show(v)} at {', '.join(stages)}" for v, stages in groups]
    if len(groups) > 1 and len(groups[-1][1]) > max(2, len(groups[-2][1])):
        parts[-1] = f"{show(groups[-1][0])} at the other stages"
    return "; ".join(parts)


def _split_text(split: Split) -> str:
    """The parts that are not zero, named: "interest 25.16, penalty 9.88, fees 15.00"."""
    return ", ".join(f"{name} {_money(part)}" for name, part in zip(Split._fields, split) if part) or "nothing"


def _late_items(items: list[Item]) -> list[LateItem]:
    late = {i.key: LateItem(i.payment_id, i.kind, i.original_date, i.booked_date) for i in items if i.late}
    return [late[key] for key in sorted(late)]


def _duplicate_suspects(router: list[Item], business_date: str) -> list[Suspect]:
    """Runs of payments to one loan, of one amount, from one channel, each accepted within the window
    of the one before under a different idempotency key: one suspect per run, not per pair (a
    customer who paid the same installment five times is one thing to look at)."""
    same: dict[tuple, list[Item]] = defaultdict(list)
    for i in router:
        if i.kind == PAYMENT and i.booked_date == business_date and i.loan_id and i.accept_time is not None:
            same[(i.loan_id, i.channel, i.currency, i.amount)].append(i)
    suspects = []
    for (loan_id, channel, currency, amount), payments in sorted(same.items()):
        payments.sort(key=lambda i: (i.accept_time, i.payment_id))
        runs = [[payments[0]]]
        for previous, payment in zip(payments, payments[1:]):
            if _accepted(payment) - _accepted(previous) <= DUPLICATE_WINDOW_SECONDS:
                runs[-1].append(payment)
            else:
                runs.append([payment])
        for run in runs:
            if len({i.idempotency_key for i in run}) > 1:
                suspects.append(Suspect(loan_id, channel, currency, amount, tuple(i.payment_id for i in run),
                                        _accepted(run[-1]) - _accepted(run[0])))
    return suspects


def _accepted(item: Item) -> int:
    """A router item's accept time: _duplicate_suspects looks only at items that have one."""
    assert item.accept_time is not None
    return item.accept_time


def _balance(by_stage: dict[str, list[Item]], business_date: str) -> list[Balance]:
    """Per core and currency: the principal the core moved on the day against the net credits to
    the loan principal accounts in the mainframe's book for the same items (wherever booked)."""
    if CORES_STAGE not in by_stage or BOOK not in by_stage:
        return []
    # A reversal gives principal back (a debit to 1401xx); a revision's split is already signed.
    sign = {PAYMENT: 1, REVERSAL: -1, REVISION: 1}
    core_of_key: dict[tuple[str, str], types_pb2.LoanType] = {}
    totals: dict[tuple[types_pb2.LoanType, str], list[int]] = defaultdict(lambda: [0, 0])
    for i in by_stage[CORES_STAGE]:
        if i.booked_date == business_date:  # not the items of another day fetched for late ones
            core_of_key[i.key] = i.loan_type
            totals[(i.loan_type, i.currency)][0] += sign[i.kind] * i.split.principal
    for i in by_stage[BOOK]:
        if i.key in core_of_key:
            totals[(core_of_key[i.key], i.currency)][1] += sign[i.kind] * i.split.principal
    return [Balance(CORE_OF.get(loan_type, str(loan_type)), currency, core, book)
            for (loan_type, currency), (core, book) in sorted(totals.items())]


def _totals(by_stage: dict[str, list[Item]]) -> list[tuple]:
    """The per-stage totals table: the whole day, per channel and per core; kinds and currencies apart."""
    rolled: dict[tuple, dict[str, tuple[int, int]]] = defaultdict(dict)
    for stage, items in by_stage.items():
        for i in items:
            kind = i.kind + "s"
            for check in ("whole day", f"channel {_name(types_pb2.Channel, i.channel)}",
                          f"core {_name(types_pb2.LoanType, i.loan_type)}"):
                count, amount = rolled[(check, kind, i.currency)].get(stage, (0, 0))
                rolled[(check, kind, i.currency)][stage] = (count + 1, amount + i.amount)
    rows = []
    for key in sorted(rolled, key=lambda k: (k[0] == "whole day", k)):  # the day's total last
        # The router keeps no revisions (it forwards them): not a stage of theirs.
        counted = [stage for stage in by_stage if not (key[1] == REVISION + "s" and stage == ROUTER)]
        values = {stage: rolled[key].get(stage, (0, 0)) for stage in counted}
        status = "ok" if len(set(values.values())) == 1 else "BREAK"
        rows.append((*key, *(f"{values[stage][0]} / {_money(values[stage][1])}" if stage in values else "-"
                             for stage in by_stage), status))
    return rows


def _stage_order(stage: str) -> tuple[int, str]:
    return (STAGES.index(stage) if stage in STAGES else len(STAGES), stage)


# --- turning each service's answer into items -------------------------------------------------


def allocation_split(allocation) -> Split:
    return Split(allocation.principal_minor + allocation.prepayment_minor, allocation.interest_minor,
                 allocation.penalty_interest_minor, allocation.fees_minor, allocation.insurance_minor,
                 allocation.overpayment_minor)


def payment_items(payment, business_date: str) -> list[Item]:
    """A router payment -> its movements on the day: the payment if booked on it (pending while
    ACCEPTED), its reversal if reversed on it. REJECTED moved nothing."""
    p = payment
    common = dict(stage=ROUTER, source="payment-router", payment_id=p.payment_id, channel=p.channel,
                  loan_type=p.loan_type, currency=p.amount.currency_code, amount=p.amount.amount_minor,
                  loan_id=p.loan_id, idempotency_key=p.idempotency_key,
                  accept_time=p.accept_time.seconds if p.HasField("accept_time") else None)
    split = allocation_split(p.allocation)
    items = []
    moved = (types_pb2.PAYMENT_STATUS_ACCEPTED, types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REVERSED)
    if p.business_date == business_date and p.status in moved:
        items.append(Item(kind=PAYMENT, booked_date=p.business_date, original_date=p.business_date,
                          pending=p.status == types_pb2.PAYMENT_STATUS_ACCEPTED, split=split, **common))
    if p.status == types_pb2.PAYMENT_STATUS_REVERSED and p.reversal_business_date == business_date:
        # What the reversal took back: the allocation as last revised.
        taken_back = allocation_split(p.reversed_allocation) if p.HasField("reversed_allocation") else split
        items.append(Item(kind=REVERSAL, booked_date=p.reversal_business_date,
                          original_date=p.reversal_business_date, split=taken_back, **common))
    return items


def movement_item(movement, core: str, business_date: str) -> Item:
    m = movement
    booked = m.business_date or business_date
    if m.revision:
        return Item(CORES_STAGE, core, m.movement_id, REVISION, m.channel, CORES[core], m.amount.currency_code, 0,
                    allocation_split(m.allocation), booked, booked, loan_id=m.loan_id, ref=m.movement_id)
    return Item(CORES_STAGE, core, m.payment_id, REVERSAL if m.reversal else PAYMENT, m.channel, CORES[core],
                m.amount.currency_code, m.amount.amount_minor, allocation_split(m.allocation), booked, booked,
                loan_id=m.loan_id, ref=m.movement_id)


def posting_item(posting, stage: str, source: str, original_date: str = "") -> Item:
    """A ledger posting -> an item. Its split is what it moved on each part's accounts, credits
    less debits: a payment credits them, a reversal (the payment's lines swapped: it credits the
    channel's clearing account) debits them back, so its split is the negative. A revision has no
    clearing line (no money moved): amount 0, its split the change, parts up or down. The amount
    of a payment or a reversal is its debits."""
    debit, credit = ledger_pb2.ENTRY_SIDE_DEBIT, ledger_pb2.ENTRY_SIDE_CREDIT
    currency = "/".join(sorted({e.amount.currency_code for e in posting.entries}))  # one, unless broken
    net = [0] * len(Split._fields)
    for e in posting.entries:
        part = _part(e.account)
        if part is not None:
            net[part] += e.amount.amount_minor if e.side == credit else -e.amount.amount_minor
    clearing = [e.side for e in posting.entries if e.account.startswith(coa.CHANNEL_CLEARING)]
    if not clearing:
        return Item(stage, source, posting.posting_id, REVISION, posting.channel, posting.loan_type, currency, 0,
                    Split(*net), posting.business_date, original_date, ref=posting.posting_id)
    reversal = credit in clearing
    amount = sum(e.amount.amount_minor for e in posting.entries if e.side == debit)
    return Item(stage, source, posting.payment_id, REVERSAL if reversal else PAYMENT, posting.channel,
                posting.loan_type, currency, amount, Split(*(-n if reversal else n for n in net)),
                posting.business_date, original_date, ref=posting.posting_id)


def _part(account: str) -> int | None:
    """Which field of Split a ledger account feeds (None: not part of the allocation)."""
    if account.startswith(coa.LOAN_PRINCIPAL):
        return 0
    if account.startswith(coa.INTEREST_INCOME):
        return 1
    if account.startswith(coa.PENALTY_INTEREST_INCOME):
        return 2
    if account.startswith(coa.FEE_INCOME):
        return 3
    if account in coa.INSURANCE_ACCOUNTS:
        return 4
    if account.startswith(coa.CUSTOMER_CREDIT):
        return 5
    return None


def confirmation_items(confirmation, business_date: str) -> list[Item]:
    c = confirmation
    kinds = {types_pb2.PAYMENT_STATUS_APPLIED: PAYMENT, types_pb2.PAYMENT_STATUS_REVERSED: REVERSAL}
    if c.status not in kinds:  # a rejection moved nothing
        return []
    booked = c.business_date or business_date
    if c.revision:
        before, after = allocation_split(c.allocation_before), allocation_split(c.allocation)
        return [Item(CONFIRMED, "confirmations", f"{c.payment_id}:R{c.revision}", REVISION, c.channel, c.loan_type,
                     c.amount.currency_code, 0, Split(*(a - b for a, b in zip(after, before))), booked, booked,
                     loan_id=c.loan_id, ref=f"sequence {c.sequence}")]
    return [Item(CONFIRMED, "confirmations", c.payment_id, kinds[c.status], c.channel, c.loan_type,
                 c.amount.currency_code, c.amount.amount_minor, allocation_split(c.allocation), booked, booked,
                 loan_id=c.loan_id, ref=f"sequence {c.sequence}")]


# --- sources ----------------------------------------------------------------------------------


class SourceUnavailable(Exception):
    pass


class Source(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def stage(self) -> str: ...

    @property
    def loan_types(self) -> frozenset[types_pb2.LoanType]: ...  # what it speaks for

    async def items(self, business_date: str) -> list[Item]: ...


class ServiceSource(Source, Protocol):
    """A source whose items are read from a service's answer (a day's replies), which can be kept."""

    async def replies(self, business_date: str) -> list: ...

    def items_from(self, replies: list, business_date: str) -> list[Item]: ...


Reply = TypeVar("Reply")


@dataclass
class ListingSource(Generic[Reply]):
    """A day's items as one service lists them to the operator on a server stream of Reply messages."""

    name: str
    stage: str
    service: str  # whose address to ask
    listing: Callable  # the stub's server-streaming method, given a channel
    request: Callable[[str], object]  # the request for a business date
    items_of: Callable[[Reply, str], Iterable[Item]]  # one reply's items (reply, business date)
    settings: Settings
    loan_types: frozenset[types_pb2.LoanType] = ALL_LOAN_TYPES
    address: str = ""  # where to ask, when not the service's own address (one router of several journals)

    async def items(self, business_date: str) -> list[Item]:
        return self.items_from(await self.replies(business_date), business_date)

    async def replies(self, business_date: str) -> list:
        """The service's answer for the day, as it came (what `paymesh archive` keeps)."""
        address = self.address or address_of(self.service)
        async with tls.channel_for(address, self.settings.pki_dir, OPERATOR) as channel:
            return await _stream(self.listing(channel), self.request(business_date))

    def items_from(self, replies: list, business_date: str) -> list[Item]:
        return [item for reply in replies for item in self.items_of(reply, business_date)]


@dataclass
class CoreSource:
    """What one loan core applied (and reversed) on the day."""

    name: str
    settings: Settings
    stage: str = CORES_STAGE

    @property
    def loan_types(self) -> frozenset[types_pb2.LoanType]:
        return frozenset([CORES[self.name]])

    async def items(self, business_date: str) -> list[Item]:
        return self.items_from(await self.replies(business_date), business_date)

    async def replies(self, business_date: str) -> list[core_pb2.ListAppliedPaymentsResponse]:
        """Every page of the core's answer for the day."""
        pages = []
        async with tls.channel_for(address_of(self.name), self.settings.pki_dir, OPERATOR) as channel:
            stub = core_grpc.LoanCoreServiceStub(channel)
            token = ""
            while True:
                page = await _call(stub.ListAppliedPayments, core_pb2.ListAppliedPaymentsRequest(
                    business_date=business_date, page_size=10_000, page_token=token))
                pages.append(page)
                token = page.next_page_token
                if not token:
                    return pages

    def items_from(self, replies: list, business_date: str) -> list[Item]:
        return [movement_item(m, self.name, business_date) for page in replies for m in page.movements]


# One router's address per journal, comma-separated, where there are several: in prod each router
# bulkhead keeps its own (its replicas share it), so the router stage is what all of them accepted.
ROUTER_JOURNALS_ENV = "PAYMESH_ROUTER_JOURNAL_ADDRS"


def router_journals() -> list[str]:
    """Whom to ask for the router stage: one router per journal (PAYMESH_ROUTER_JOURNAL_ADDRS), else the
    router (PAYMESH_PAYMENT_ROUTER_ADDR)."""
    named = [a.strip() for a in os.environ.get(ROUTER_JOURNALS_ENV, "").split(",") if a.strip()]
    return named or [address_of("payment-router")]


def default_sources(settings: Settings) -> list[ServiceSource]:
    queued, posted = ledger_pb2.POSTING_STATUS_QUEUED, ledger_pb2.POSTING_STATUS_POSTED
    journals = router_journals()

    def bridge_postings(name: str, stage: str, statuses: frozenset[ledger_pb2.PostingStatus]
                        ) -> ListingSource[bridge_pb2.ListPostingsResponse]:
        """The bridge's postings booked on the day or of the day booked later, in the given statuses."""
        return ListingSource[bridge_pb2.ListPostingsResponse](
            name, stage, "mainframe-bridge", lambda ch: bridge_grpc.MainframeBridgeServiceStub(ch).ListPostings,
            lambda day: bridge_pb2.ListPostingsRequest(business_date=day),
            lambda reply, _: [posting_item(q.posting, stage, name, q.original_business_date or q.posting.business_date)
                              for q in reply.postings if q.status in statuses], settings)

    book = "mainframe book (via mainframe-bridge)"
    return [
        # What the routers accepted from the channels (refusals and core rejections apart): each journal's.
        *(ListingSource[ops_pb2.ListPaymentsResponse](
            "payment-router" if len(journals) == 1 else f"payment-router {address}", ROUTER, "payment-router",
            lambda ch: ops_grpc.PaymentOperationsServiceStub(ch).ListPayments,
            lambda day: ops_pb2.ListPaymentsRequest(business_date=day),
            lambda reply, day: [i for p in reply.payments for i in payment_items(p, day)], settings,
            address=address if len(journals) > 1 else "") for address in journals),
        *(CoreSource(name, settings) for name in CORES),
        bridge_postings("mainframe-bridge (queued+posted)", SENT, frozenset([queued, posted])),
        bridge_postings("mainframe-bridge (posted)", POSTED, frozenset([posted])),
        # The mainframe's own book of the day (asked through the bridge): what it really booked. It
        # knows only the day it booked a posting in, not its original date.
        ListingSource[bridge_pb2.ListMainframeBookResponse](book, BOOK, "mainframe-bridge",
                      lambda ch: bridge_grpc.MainframeBridgeServiceStub(ch).ListMainframeBook,
                      lambda day: bridge_pb2.ListMainframeBookRequest(business_date=day),
                      lambda reply, _: [posting_item(p, BOOK, book) for p in reply.postings], settings),
        # What was confirmed to the channels: applied payments and reversals.
        ListingSource[conf_pb2.ListConfirmationsResponse]("confirmations", CONFIRMED, "confirmations",
                      lambda ch: conf_grpc.ConfirmationServiceStub(ch).ListConfirmations,
                      lambda day: conf_pb2.ListConfirmationsRequest(business_date=day),
                      lambda reply, day: [i for c in reply.confirmations for i in confirmation_items(c, day)],
                      settings),
    ]


async def _call(method, request):
    try:
        return await method(request, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        _raise_if_not_answering(error)
        raise


async def _stream(method, request) -> list:
    """Every message of a server stream (the deadline covers the whole stream)."""
    try:
        return [reply async for reply in method(request, timeout=CALL_TIMEOUT)]
    except grpc.aio.AioRpcError as error:
        _raise_if_not_answering(error)
        raise


def _raise_if_not_answering(error: grpc.aio.AioRpcError) -> None:
    if error.code() in NOT_ANSWERING:
        raise SourceUnavailable(f"{error.code().name}: {error.details()}") from error


# --- the run ----------------------------------------------------------------------------------


async def reconcile(sources: Sequence[Source], business_date: str) -> Outcome:
    """Asks every source for the day, then for the other days its late items need, and matches."""

    async def ask(source: Source, date: str):
        try:
            return await source.items(date)
        except SourceUnavailable as why:
            return why
        except (grpc.aio.AioRpcError, OSError) as error:
            return SourceUnavailable(str(error))

    answers = list(await asyncio.gather(*(ask(s, business_date) for s in sources)))

    # Late items, known from the bridge's postings: of this day booked later (the book of the day
    # they were booked in has them), and of an earlier day booked today (the other stages have
    # them among the items of their original day).
    ledger = [i for s, answer in zip(sources, answers) if s.stage in LEDGER_STAGES and isinstance(answer, list)
              for i in answer if i.late]
    booked_later = {i.key: i.booked_date for i in ledger if i.original_date == business_date}
    from_before = {i.key: i.original_date for i in ledger if i.booked_date == business_date}

    def wanted(source: Source) -> dict[tuple[str, str], str]:  # item key -> the other day to ask for it
        if source.stage in LEDGER_STAGES:
            return {}  # ListPostings already returns both sorts
        return booked_later if source.stage == BOOK else from_before

    extra = [(n, date) for n, (s, answer) in enumerate(zip(sources, answers)) if isinstance(answer, list)
             for date in sorted(set(wanted(s).values()))]
    more = await asyncio.gather(*(ask(sources[n], date) for n, date in extra))
    for (n, date), answer in zip(extra, more):
        if isinstance(answer, SourceUnavailable):
            answers[n] = answer
        elif isinstance(answers[n], list):  # just the late items, not that day's others
            answers[n] += [i for i in answer if wanted(sources[n]).get(i.key) == date]

    items_by_stage: dict[str, list[Item]] = {}
    covered: dict[str, set[types_pb2.LoanType]] = defaultdict(set)  # per stage: loan types all its sources answered
    missing: dict[str, set[types_pb2.LoanType]] = defaultdict(set)
    unavailable = []
    for source, answer in zip(sources, answers):
        if isinstance(answer, SourceUnavailable):
            unavailable.append((source.name, str(answer)))
            missing[source.stage] |= source.loan_types
            continue
        covered[source.stage] |= source.loan_types
        items_by_stage.setdefault(source.stage, []).extend(answer)
    # A stage with nothing complete drops out; the others are compared on what they all cover.
    complete = {stage: covered[stage] - missing[stage] for stage in items_by_stage}
    items_by_stage = {stage: items for stage, items in items_by_stage.items() if complete[stage]}
    compared = set.intersection(*(complete[s] for s in items_by_stage)) if items_by_stage else set()
    return match(items_by_stage, business_date, unavailable=unavailable, left_out=ALL_LOAN_TYPES - compared)


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
    o = outcome
    late = len(o.late_items)
    lines = [f"reconciliation of {business_date}",
             f"{o.breaks} breaks, {o.checks - o.breaks} checks agree",
             f"items matched: {o.matched.get(PAYMENT, 0):,} payments, {o.matched.get(REVERSAL, 0):,} reversals, "
             f"{o.matched.get(REVISION, 0):,} revisions; "
             f"late items: {late}; duplicate suspects: {len(o.suspects)}"]
    for source, why in o.unavailable:
        lines.append(f"source unavailable: {source} ({why})")
    if o.left_out:
        names = ", ".join(sorted(_name(types_pb2.LoanType, t) for t in o.left_out))
        lines.append(f"not compared (a source for them is unavailable): {names}")
    if len(o.stages) < 2:
        lines.append("nothing to compare: fewer than two stages answered")

    def section(title: str, header: tuple, rows: list[tuple], limit: int = DETAIL_LINES) -> None:
        if rows:
            shown = rows if show_all else rows[:limit]
            lines.extend(["", title, format_table([header, *shown])])
            if len(shown) < len(rows):
                lines.append(f"... and {len(rows) - len(shown)} more (--all shows every one)")

    # Without --all: the whole day's totals, and any channel or core whose totals differ.
    totals = [row for row in o.rows if show_all or row[0] == "whole day" or row[-1] != "ok"]
    section("totals per stage (count / amount):",
            ("CHECK", "KIND", "CURRENCY", *(s.upper() for s in o.stages), "STATUS"), totals)
    section("breaks:", ("PAYMENT ID", "KIND", "WHAT", "STAGES", "DETAIL"),
            [(b.payment_id, b.kind, p.what, ", ".join(p.stages), p.detail) for b in o.item_breaks for p in b.problems])
    section("late items (not breaks):", ("PAYMENT ID", "KIND", "LATE"),
            [(i.payment_id, i.kind, str(i)) for i in o.late_items])
    section("balance check, principal per core (the core's movements against 1401xx in the mainframe book):",
            ("CORE", "CURRENCY", "CORE PRINCIPAL", "MAINFRAME BOOK", "STATUS"),
            [(b.core, b.currency, _money(b.core_principal), _money(b.book_principal), "ok" if b.agrees else "BREAK")
             for b in o.balance])
    section(f"duplicate suspects (not breaks): same loan, amount and channel within "
            f"{DUPLICATE_WINDOW_SECONDS // 60} minutes, different idempotency keys:",
            ("LOAN", "CHANNEL", "AMOUNT", "COUNT", "PAYMENTS", "WITHIN"),
            [(s.loan_id, _name(types_pb2.Channel, s.channel), f"{_money(s.amount)} {s.currency}", len(s.payment_ids),
              " and ".join(s.payment_ids) if len(s.payment_ids) < 4
              else f"{s.payment_ids[0]}, {s.payment_ids[1]} ... {s.payment_ids[-1]}",
              f"{s.seconds_apart // 60}m{s.seconds_apart % 60:02d}s")
             for s in o.suspects], limit=SUSPECT_LINES)
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--date", required=True, type=date_argument, help="business date, YYYY-MM-DD")
    parser.add_argument("--all", action="store_true", help="show every row and every item, not only what differs")
    parser.add_argument("--archive", type=Path, metavar="FOLDER",
                        help="reconcile the day from its archive (`paymesh archive`), not from the services")


def run(args) -> int:
    settings = Settings.from_env()
    sources: Sequence[Source] = default_sources(settings)
    if args.archive:
        from paymesh_tools import archive  # the archive reads back the sources' own replies

        try:
            sources = archive.archived_sources(default_sources(settings), args.archive, args.date)
        except (OSError, ValueError) as unreadable:
            print(f"the archive cannot be read: {unreadable}", file=sys.stderr)
            return 2
    outcome = asyncio.run(reconcile(sources, args.date))
    print(report(outcome, args.date, args.all))
    return outcome.exit_code
