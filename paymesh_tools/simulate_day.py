"""`paymesh simulate-day`: a realistic business day through the whole mesh.

About 10,000 payments over the five channels: online for the app, internet
banking and ATMs (with retries and bad requests mixed in), day files for agents
and stores (with bad lines and one file uploaded twice). A subscriber per
channel follows the confirmation stream. The day is closed at the mainframe while
the last tenth of the payments still arrive, as a bank's close meets customers who
keep paying: those are booked in the next business day. Both days are reconciled.
Starts the local mesh first if it is not running, its clock at 10:00 in Lima of the
next business day this home has not closed yet.
"""

import asyncio
import datetime as dt
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import cast

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc, payments_pb2
from loan_core.portfolio import PortfolioSettings, customer_ids
from payment_router.channel_policy import load_policies
from paymesh_tools.dev_tokens import mint
from paymesh_tools import dev_pki
from paymesh import tls
from paymesh_tools import mesh, reconcile
from paymesh_tools.batch_upload import every_result
from paymesh.business_calendar import BusinessCalendar, bank_calendar
from paymesh_tools.close_day import close_day as paymesh_close_day, describe as describe_close
from paymesh.config import Settings, address_of
from paymesh_tools.probe import health_of
from paymesh_tools.textui import format_money, format_table
from paymesh.errors import error_info, reason_name, retry_delay
from paymesh.loan_ids import make_loan_id
from paymesh.topology import CHANNEL_NAMES, CHANNEL_VALUES, CORE_OF, Identity

ONLINE = {"app": 0.25, "internet-banking": 0.15, "atm": 0.20}
BATCH = {"agent": 0.22, "store": 0.18}
ONLINE_CONCURRENCY = 16  # customers at the same moment, per online channel
RATE_LIMITED_TRIES = 5  # sends of one press while the channel is over its rate, or a core is away
# What a channel asks again, after the RetryInfo's delay: over its rate; its loan's core away for a moment.
ASK_AGAIN = frozenset([grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE])
PACE = 0.8  # of its rate limit, the most a channel sends: a well-behaved integration throttles itself
BATCH_FILE_LINES = 1000
CLOSE_AT = 0.9  # of the day's payments sent when the close begins


@dataclass
class DayResults:
    payments: dict[str, payments_pb2.Payment] = field(default_factory=dict)  # payment id -> final state
    # (channel, order's key) -> reason, for orders refused before a core: an order, not an attempt
    refused: dict[tuple[str, str], str] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # channel -> online calls
    retries: int = 0
    replayed_lines: int = 0
    confirmed: Counter = field(default_factory=Counter)  # channel -> confirmations received

    def record_error(self, channel: str, key: str, error: grpc.aio.AioRpcError) -> None:
        info = error_info(error)
        payment_id = info.metadata.get("payment_id") if info else ""
        if info is not None and payment_id:  # journaled and rejected by its core: it is confirmed like any result
            reason = cast(errors_pb2.ErrorReason, errors_pb2.ErrorReason.Value("ERROR_REASON_" + info.reason))
            self.payments[payment_id] = payments_pb2.Payment(
                payment_id=payment_id, channel=CHANNEL_VALUES[channel], status=types_pb2.PAYMENT_STATUS_REJECTED,
                rejection=errors_pb2.Rejection(reason=reason))
        else:
            self.refused[(channel, key)] = info.reason if info else error.code().name


DIGITAL = ("app", "internet-banking")
CONSULT_CONCURRENCY = 32  # inquiries in flight per channel while the day is planned


@dataclass
class DayPlan:
    orders: dict[str, list[payments_pb2.PaymentOrder]]
    customer_of: dict[str, str]  # a digital order's idempotency key -> its customer (the token's subject)


async def plan_orders(count: int, seed: int, settings: Settings) -> DayPlan:
    """The day's orders, as channels come by them: a customer brings a loan number (or logs in to the
    app, which lists their loans), the channel asks what it owes (the debt inquiry), and the customer
    pays it, mostly the amount due (sometimes a little more or two installments, sometimes less);
    ~2 % are bad. Nothing here knows a loan but by asking the router; the channels ask at once."""
    plan = DayPlan({}, {})
    shares = {**ONLINE, **BATCH}
    planned = await asyncio.gather(*(_plan_channel(channel, int(count * share), seed, settings)
                                     for channel, share in shares.items()))
    for channel, (orders, customer_of) in zip(shares, planned):
        plan.orders[channel] = orders
        plan.customer_of.update(customer_of)
    return plan


async def _plan_channel(channel: str, wanted: int, seed: int, settings: Settings
                        ) -> tuple[list[payments_pb2.PaymentOrder], dict[str, str]]:
    rng = random.Random(f"{seed}:{channel}")
    portfolio = PortfolioSettings.from_env()
    limits = load_policies()[channel].max_amount_minor

    def payable(debt: api.LoanDebt) -> bool:
        # A customer owing more than an ATM or a store takes pays elsewhere; one with nothing due, not at all.
        return 0 < debt.amount_due.amount_minor <= limits[debt.currency_code]

    if channel in DIGITAL:
        customers = customer_ids(portfolio.count)
        rng.shuffle(customers)
        payable_loans = await consult_customers(channel, customers, wanted, payable, settings)
    else:
        loan_ids = [make_loan_id(loan_type, n) for loan_type in CORE_OF for n in range(1, portfolio.count + 1)]
        rng.shuffle(loan_ids)
        payable_loans = [(debt, "") for debt in await consult_loans(channel, loan_ids, wanted, payable, settings)]
    orders, customer_of = [], {}
    for n in range(wanted if payable_loans else 0):
        # Each customer pays once a day on a channel (the reconciliation lists a loan paid the same
        # amount twice within minutes as a duplicate suspect); more orders than loans start again.
        debt, customer = payable_loans[n % len(payable_loans)]
        due, payoff = debt.amount_due.amount_minor, debt.payoff_amount.amount_minor
        amount = min(due * rng.choice([10, 10, 10, 10, 10, 11, 20, 6]) // 10, payoff, limits[debt.currency_code])
        currency, loan_id = debt.currency_code, debt.loan_id
        bad = rng.random()
        if bad < 0.007:
            loan_id = loan_id[:4] + "999999"  # unknown loan
        elif bad < 0.014:
            currency = "USD" if currency == "PEN" else "PEN"  # not the loan's currency
        elif bad < 0.02:
            amount = -amount  # a negative amount
        key = f"{channel}-{seed}-{n}"
        orders.append(payments_pb2.PaymentOrder(
            idempotency_key=key, loan_id=loan_id,
            amount=types_pb2.Money(currency_code=currency, amount_minor=amount),
            prepayment_mode=rng.choice([types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
                                        types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT]),
            channel_reference=f"{channel[:3].upper()}-{rng.randrange(1, 200):04d}",
        ))
        if customer:
            customer_of[key] = customer
    return orders, customer_of


async def _politely(call, rng: random.Random):
    """call() again while the channel is over its rate, or a core is briefly away (a mesh just started
    on a busy machine), waiting as told (RetryInfo, with jitter)."""
    for tries_left in reversed(range(RATE_LIMITED_TRIES)):
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            delay = retry_delay(error)
            if error.code() not in ASK_AGAIN or delay is None or not tries_left:
                raise
            await asyncio.sleep(delay * (1 + rng.random()))


async def consult_loans(channel: str, loan_ids: list[str], wanted: int, payable, settings: Settings
                        ) -> list[api.LoanDebt]:
    """Customers bringing loan numbers until wanted of them owe what the channel takes: what each owes,
    asked as the channel asks before it takes the money (GetLoanDebt)."""
    pacer, rng = Pacer(PACE * load_policies()[channel].bucket.rate), random.Random(channel)
    found: list[api.LoanDebt] = []
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", channel)) as ch:
        stub = api_grpc.PaymentServiceStub(ch)

        async def one(loan_id: str) -> None:
            try:
                reply = await _politely(lambda: stub.GetLoanDebt(api.GetLoanDebtRequest(loan_id=loan_id),
                                                                 timeout=10), rng)
                if payable(reply.debt):
                    found.append(reply.debt)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:  # a loan number that does not exist: sent away
                    raise

        await _until_enough(loan_ids, one, lambda: len(found) >= wanted, pacer)
    return found[:wanted]


async def _until_enough(askers, ask, enough, pacer: "Pacer") -> None:
    """ask(each) at the pacer's rate, a few at a time, until enough() or every one was asked."""
    window = asyncio.Semaphore(CONSULT_CONCURRENCY)

    async def one(asker) -> None:
        try:
            await ask(asker)
        finally:
            window.release()

    asking = []
    for asker in askers:
        await window.acquire()
        if enough():
            window.release()
            break
        await pacer.wait()
        asking.append(asyncio.create_task(one(asker)))
    await asyncio.gather(*asking)


async def consult_customers(channel: str, customers: list[str], wanted: int, payable, settings: Settings
                            ) -> list[tuple[api.LoanDebt, str]]:
    """Digital customers logging in until wanted of their loans owe what the channel takes: each
    customer's loans (ListCustomerLoans, with their own token) and what each owes."""
    pacer, rng = Pacer(PACE * load_policies()[channel].bucket.rate), random.Random(channel)
    found: list[tuple[api.LoanDebt, str]] = []
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", channel)) as ch:
        stub = api_grpc.PaymentServiceStub(ch)

        async def one(customer: str) -> None:
            metadata = (("authorization", "Bearer " + mint(settings.pki_dir, customer, channel)),)
            reply = await _politely(lambda: stub.ListCustomerLoans(api.ListCustomerLoansRequest(),
                                                                   metadata=metadata, timeout=10), rng)
            found.extend((debt, customer) for debt in reply.loans if payable(debt))

        await _until_enough(customers, one, lambda: len(found) >= wanted, pacer)
    return found[:wanted]


class Pacer:
    """At most rate calls a second, evenly spaced."""

    def __init__(self, rate: float):
        self.interval, self.next_at = 1 / rate, 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        at = self.next_at = max(now, self.next_at + self.interval)
        await asyncio.sleep(at - now)


async def run_online(channel: str, orders, customer_of: dict[str, str], settings: Settings, results: DayResults,
                     progress) -> None:
    window = asyncio.Semaphore(ONLINE_CONCURRENCY)
    pacer = Pacer(PACE * load_policies()[channel].bucket.rate)
    rng = random.Random(channel)
    tokens: dict[str, tuple] = {}  # a digital customer's token, minted once (their app's session)

    def metadata_of(order):
        customer = customer_of.get(order.idempotency_key)
        if customer and customer not in tokens:
            tokens[customer] = (("authorization", "Bearer " + mint(settings.pki_dir, customer, channel)),)
        return tokens.get(customer or "")

    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", channel)) as ch:
        stub = api_grpc.PaymentServiceStub(ch)

        async def submit(order):
            # Like a real app: over the channel's rate, wait as told (RetryInfo, with jitter so the
            # customers waiting do not all come back at once) and send it again.
            return await _politely(lambda: stub.SubmitPayment(api.SubmitPaymentRequest(payment=order),
                                                              metadata=metadata_of(order), timeout=10), rng)

        async def one(order):
            async with window:
                await pacer.wait()
                for attempt in range(2 if rng.random() < 0.03 else 1):  # 3 % of customers press twice
                    started = time.perf_counter()
                    try:
                        reply = await submit(order)
                        results.payments[reply.payment.payment_id] = reply.payment
                        results.refused.pop((channel, order.idempotency_key), None)  # a press that went through
                    except grpc.aio.AioRpcError as error:
                        results.record_error(channel, order.idempotency_key, error)
                    results.latencies[channel].append(time.perf_counter() - started)
                    results.retries += attempt
                progress()

        await asyncio.gather(*(one(order) for order in orders))


def batch_requests(batch_id: str, day: str, lines, lines_per_message: int = 500) -> list[api.UploadBatchRequest]:
    totals: Counter[str] = Counter()
    for order in lines:
        totals[order.amount.currency_code] += order.amount.amount_minor
    numbered = [api.BatchLine(line_number=n, payment=o) for n, o in enumerate(lines, 1)]
    return [
        api.UploadBatchRequest(header=api.BatchHeader(batch_id=batch_id, business_date=day)),
        *(api.UploadBatchRequest(lines=api.BatchLines(lines=numbered[i:i + lines_per_message]))
          for i in range(0, len(numbered), lines_per_message)),
        api.UploadBatchRequest(trailer=api.BatchTrailer(line_count=len(lines), control_totals=[
            types_pb2.Money(currency_code=c, amount_minor=a) for c, a in sorted(totals.items())])),
    ]


async def run_batches(channel: str, orders, seed: int, day: str, settings: Settings, results: DayResults,
                      progress) -> None:
    collected = bank_calendar().value_date().isoformat()  # the files' date: today's collections, in Lima
    files = [orders[i:i + BATCH_FILE_LINES] for i in range(0, len(orders), BATCH_FILE_LINES)]
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", channel)) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        for number, lines in enumerate(files + files[:1]):  # the first file arrives a second time
            # The file's name is its identity: a day replayed with another seed sends other files.
            batch_id = f"{channel}-{day}-{seed}-{number % len(files)}"
            malformed = [order for order in lines if order.amount.amount_minor <= 0]
            if malformed:
                # A file with a malformed line is refused whole, nothing applied: the agent takes
                # those lines out and sends the file again, as a new one.
                if number < len(files):
                    try:
                        await stub.UploadBatch(iter(batch_requests(batch_id, collected, lines)), timeout=300)
                    except grpc.aio.AioRpcError as error:
                        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                            raise
                    for order in malformed:
                        results.refused[(channel, order.idempotency_key)] = "INVALID_FIELD"
                lines, batch_id = [order for order in lines if order.amount.amount_minor > 0], batch_id + "-fixed"
            reply = await stub.UploadBatch(iter(batch_requests(batch_id, collected, lines)), timeout=300)
            results.replayed_lines += reply.summary.replayed_count
            if number < len(files):
                for line, payment in ((r.line_number, r.payment) for r in await every_result(stub, reply)):
                    if payment.loan_type:  # journaled: applied, or rejected by its core
                        results.payments[payment.payment_id] = payment
                    else:  # refused at the router's door, nothing written
                        results.refused[(channel, f"{batch_id}:{line}")] = reason_name(payment.rejection.reason)
                progress(len(lines) + len(malformed))  # the second upload is a replay, not more of the day's payments


async def follow_confirmations(channel: str, settings: Settings, results: DayResults, done: asyncio.Event) -> None:
    """The channel's subscriber: counts this run's confirmations as they arrive."""
    async with tls.channel_for(address_of("confirmations"), settings.pki_dir, Identity("channel", channel)) as ch:
        call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
            conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
        seen: set[str] = set()

        async def read():
            async for event in call:
                seen.update(c.payment_id for c in event.batch.confirmations)

        reader = asyncio.ensure_future(read())
        await done.wait()
        mine = {p.payment_id for p in results.payments.values() if CHANNEL_NAMES[p.channel] == channel}
        deadline = time.monotonic() + 10
        while not mine <= seen and time.monotonic() < deadline and not reader.done():
            await asyncio.sleep(0.05)
        results.confirmed[channel] = len(mine & seen)
        call.cancel()
        await asyncio.gather(reader, return_exceptions=True)


REVERSALS = 20  # store payments a day's drawers do not balance for: reversed after the day's payments


async def reverse_some(settings: Settings, results: DayResults, count: int = REVERSALS) -> str:
    """The store reverses some of its payments, first those of loans paid again later (by any
    channel): the core applies those later payments again without them (revisions)."""
    by_loan: dict[str, list[payments_pb2.Payment]] = defaultdict(list)
    for p in results.payments.values():
        if p.status == types_pb2.PAYMENT_STATUS_APPLIED:
            by_loan[p.loan_id].append(p)
    store = CHANNEL_VALUES["store"]
    chosen = []
    for payments in by_loan.values():
        payments.sort(key=lambda p: (p.result_time.seconds, p.result_time.nanos))
        chosen += [(n < len(payments) - 1, p) for n, p in enumerate(payments) if p.channel == store]
    chosen.sort(key=lambda pair: (not pair[0], pair[1].payment_id))  # earlier payments of a loan first
    reversed_, earlier = 0, 0
    async with tls.channel_for(address_of("payment-router"), settings.pki_dir, Identity("channel", "store")) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        for not_latest, payment in chosen[:count]:
            try:
                reply = await stub.ReversePayment(api.ReversePaymentRequest(
                    idempotency_key=f"drawer-{payment.payment_id}", payment_id=payment.payment_id,
                    reason="the store's drawer did not balance"), timeout=10)
            except grpc.aio.AioRpcError as error:
                print(f"reversal of {payment.payment_id} refused: {error.code().name}: {error.details()}")
                continue
            results.payments[payment.payment_id] = reply.payment
            reversed_ += 1
            earlier += not_latest
    return (f"{reversed_} store payments reversed (the drawer did not balance), {earlier} of them not their "
            "loan's latest: the later payments applied again without them")


def summary(plan, results: DayResults) -> str:
    applied = [p for p in results.payments.values() if p.status == types_pb2.PAYMENT_STATUS_APPLIED]
    rows: list[tuple[object, ...]] = [
        ("CHANNEL", "ORDERS", "APPLIED", "REJECTED BY CORE", "REFUSED BY ROUTER", "APPLIED AMOUNT", "CONFIRMED")]
    for channel, orders in plan.items():
        mine = [p for p in results.payments.values() if CHANNEL_NAMES[p.channel] == channel]
        done = [p for p in mine if p.status == types_pb2.PAYMENT_STATUS_APPLIED]
        refused = sum(1 for c, _ in results.refused if c == channel)
        rows.append((channel, len(orders), len(done), len(mine) - len(done), refused, _amounts(done),
                     f"{results.confirmed[channel]}/{len(mine)}"))
    cores: list[tuple[object, ...]] = [("CORE", "APPLIED", "APPLIED AMOUNT")]
    for loan_type, name in CORE_OF.items():
        done = [p for p in applied if p.loan_type == loan_type]
        cores.append((name, len(done), _amounts(done)))
    reasons: Counter[str] = Counter()
    for p in results.payments.values():
        if p.status == types_pb2.PAYMENT_STATUS_REJECTED:
            reasons[reason_name(p.rejection.reason)] += 1
    reasons.update(results.refused.values())
    why = [("REJECTION REASON", "COUNT")] + sorted(reasons.items(), key=lambda r: -r[1])
    latencies = sorted(t for times in results.latencies.values() for t in times)
    p50, p99 = _percentiles(latencies)
    per_channel = [("ONLINE CHANNEL", "CALLS", "p50 ms", "p99 ms")] + [
        (channel, f"{len(times):,}", *(f"{p:.1f}" for p in _percentiles(sorted(times))))
        for channel, times in sorted(results.latencies.items())]
    lines = [format_table(rows), "", format_table(cores), "", format_table(why), "", format_table(per_channel), "",
             f"online latency p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(latencies)} calls "
             f"({results.retries} customer retries answered with their first result); "
             f"batch lines already applied on re-upload: {results.replayed_lines}"]
    return "\n".join(lines)


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 of sorted seconds, in ms."""
    if not latencies:
        return 0.0, 0.0
    return latencies[int(len(latencies) * 0.5)] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def _amounts(payments) -> str:
    totals: Counter[str] = Counter()
    for p in payments:
        totals[p.amount.currency_code] += p.amount.amount_minor
    return ", ".join(format_money(a, c) for c, a in sorted(totals.items())) or "-"


async def settle(settings: Settings, day: str, stages: set[str], timeout: float = 60) -> reconcile.Outcome:
    """Reconciles the given stages until they agree (the outboxes drain) or timeout passes."""
    sources = [s for s in reconcile.default_sources(settings) if s.stage in stages]
    deadline = time.monotonic() + timeout
    while True:
        outcome = await reconcile.reconcile(sources, day)
        if outcome.exit_code == 0 or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(0.5)


async def close_day(settings: Settings, day: str) -> str:
    """Closes the day at the mainframe, payments still arriving: the close moves them to the next day."""
    try:
        reply = await paymesh_close_day(settings, day)
    except grpc.aio.AioRpcError as error:
        return f"end of day {day}: NOT closed: {error.code().name}: {error.details()}"
    return f"end of day {describe_close(reply)}"


async def reconcile_day(settings: Settings, day: str) -> int:
    """The whole reconciliation, printed; returns its exit code (0: every stage agrees)."""
    every_stage = {s.stage for s in reconcile.default_sources(settings)}
    outcome = await settle(settings, day, every_stage, timeout=30)
    print(reconcile.report(outcome, day, show_all=False))
    return outcome.exit_code


def next_business_day(settings: Settings, calendar: BusinessCalendar) -> str:
    """Today's business day, or the business day after the last one this home simulated and
    closed: a closed day takes no new postings, so every run of `make run` plays a day of its own."""
    closed = settings.home / "simulated-days"
    days = [dt.date.fromisoformat(d) for d in closed.read_text().split()] if closed.exists() else []
    today = calendar.booking_date()
    return max([today] + [calendar.next_business_day(d) for d in days]).isoformat()


def remember_closed(settings: Settings, day: str) -> None:
    with open(settings.home / "simulated-days", "a") as closed:
        closed.write(day + "\n")


async def simulate(count: int, seed: int) -> int:
    settings = Settings.from_env()
    services = {}
    dev_pki.ensure_dev_pki(settings.pki_dir)
    if await health_of("payment-router", address_of("payment-router"), settings) != "SERVING":
        # A mesh of our own: its clock starts at 10:00 in Lima on the next day this home has not closed.
        day = next_business_day(settings, BusinessCalendar())
        # Always its own clock: a day is played from 10:00, so that it can be closed the same day.
        os.environ.update(PAYMESH_CLOCK_START=f"{day}T10:00:00-05:00", PAYMESH_CLOCK_STARTED_AT=str(time.time()))
        print(f"starting the local mesh for business day {day}...", flush=True)
        try:
            services = await mesh.start_local(settings)
        except RuntimeError as failed:
            print(f"the mesh did not come up: {failed}", file=sys.stderr)
            return 1
    calendar = bank_calendar()  # with a mesh already running, the same clock as its services (PAYMESH_CLOCK_START)
    day = calendar.booking_date().isoformat()
    next_day = calendar.next_business_day(dt.date.fromisoformat(day)).isoformat()
    try:
        consulting = time.monotonic()
        print("the channels' customers ask what their loans owe...", flush=True)
        plan = await plan_orders(count, seed, settings)
        total = sum(len(o) for o in plan.orders.values())
        print(f"{total} payments to make, planned from the debt inquiry in {time.monotonic() - consulting:.1f}s",
              flush=True)
        started = time.monotonic()
        sent: Counter[str] = Counter()

        def progress(n: int = 1) -> None:
            sent["n"] += n
            if sent["n"] % 250 < n or sent["n"] == total:
                print(f"\r{sent['n']}/{total} payments sent", end="", flush=True)

        results = DayResults()
        done, close_now = asyncio.Event(), asyncio.Event()

        def progress_and_close(n: int = 1) -> None:
            progress(n)
            if sent["n"] >= CLOSE_AT * total:
                close_now.set()

        async def close_while_paying() -> str:
            await close_now.wait()
            return await close_day(settings, day)

        followers = [asyncio.create_task(follow_confirmations(c, settings, results, done)) for c in plan.orders]
        closing = asyncio.create_task(close_while_paying())
        await asyncio.gather(*(run_online(c, plan.orders[c], plan.customer_of, settings, results, progress_and_close)
                               for c in ONLINE),
                             *(run_batches(c, plan.orders[c], seed, day, settings, results, progress_and_close)
                               for c in BATCH))
        elapsed = time.monotonic() - started
        done.set()
        await asyncio.gather(*followers)
        print(f"\n\nbusiness day {day}: {total} payments in {elapsed:.1f}s ({total / elapsed:,.0f}/s)\n")
        print(summary(plan.orders, results))
        close_now.set()
        print("\n" + await closing)
        remember_closed(settings, day)
        after = sum(1 for p in results.payments.values() if p.business_date == next_day)
        print(f"closed while paying: {after} payments came after the close began and are booked in {next_day}")
        print(await reverse_some(settings, results) + "\n")
        reconciled = [await reconcile_day(settings, d) for d in (day, next_day)]
        confirmed_all = sum(results.confirmed.values()) == len(results.payments)
        return max(reconciled) if confirmed_all else 1
    finally:
        if services:
            await mesh.stop_local(services, settings)


def add_arguments(parser) -> None:
    parser.add_argument("--payments", type=int, default=10_000, help="how many payments (default 10,000)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000,
                        help="the day's random seed (default: a new day each run)")


def run(args) -> int:
    return asyncio.run(simulate(args.payments, args.seed))
