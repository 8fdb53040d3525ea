"""The resilience tests' load: channels that pay loans at a steady rate and, like a
real channel, retry a refused or failed call with the same idempotency key until
they get a final answer (or give up after a bounded number of tries). What each
client was told is kept, so it can be compared with what every stage recorded."""

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.confirmations.v1.confirmations_pb2 import Confirmation
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_api, mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.loans.v1 import loan_core_service_pb2 as core_api, loan_core_service_pb2_grpc as core_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc, payments_pb2
from paymesh_tools.products import RULES_OF_TYPE
from loan_core.money import annuity_payment
from loan_core.portfolio import generate
from paymesh_tools.simulate_day import settle
from paymesh_tools.dev_tokens import mint
from paymesh import pki, tls
from paymesh_tools import reconcile
from paymesh.errors import error_info
from paymesh.topology import CHANNEL_NAMES, CHANNEL_VALUES, OPERATOR, SERVICES, Identity
from tests.channel_calls import PORTFOLIO, open_loans, order

APPLIED, REJECTED = types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REJECTED
# What a channel retries: the router (or what is behind it) is away for a moment, or asks it to slow down.
RETRY_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
RETRY_REASONS = {errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, errors_pb2.ERROR_REASON_RATE_LIMITED}


def _cut_by_a_dead_router(error: grpc.aio.AioRpcError) -> bool:
    """A stream write racing the killed router's dead transport fails in the client's own grpc
    as INTERNAL with this text (grpc/grpc#36066; a read sees UNAVAILABLE): the router never sent
    it. An INTERNAL from the router itself carries another message and stays unexpected."""
    return error.code() == grpc.StatusCode.INTERNAL and error.details() == "Internal error from Core"
MAX_TRIES = 60  # about 45 s of retrying with the backoff below: longer than any restart here
CALL_TIMEOUT = 3.0
# A channel that wants its answer soon after a restart reconnects quickly (gRPC's default starts at 1 s).
CLIENT_OPTIONS = (*tls.CHANNEL_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 100),
                  ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000))


def backoff(attempt: int) -> float:
    return min(0.05 * 2 ** attempt, 1.0)


def client_channel(address: str, pki_dir, channel: str) -> grpc.aio.Channel:
    material = pki.load(pki_dir, Identity("channel", channel))
    return grpc.aio.secure_channel(address, tls.channel_credentials(material), options=CLIENT_OPTIONS)


@dataclass
class Tally:
    """What the channels were told, by payment id; one final answer per order."""

    sent: Counter = field(default_factory=Counter)  # channel -> orders
    applied: dict[str, payments_pb2.Payment] = field(default_factory=dict)
    rejected: dict[str, types_pb2.Channel] = field(default_factory=dict)  # payment id -> channel (rejected by its core)
    answered: list[tuple[float, payments_pb2.Payment]] = field(default_factory=list)  # (monotonic time, answer)
    retries: int = 0
    retried_because: Counter = field(default_factory=Counter)  # status or reason -> retries
    unresolved: list[str] = field(default_factory=list)  # idempotency keys that never got a final answer
    unexpected: list[str] = field(default_factory=list)  # answers no retry should give

    def final(self, payment: payments_pb2.Payment) -> None:
        self.answered.append((time.monotonic(), payment))
        if payment.status == APPLIED:
            self.applied[payment.payment_id] = payment
        else:
            self.rejected[payment.payment_id] = payment.channel

    def applied_by_channel(self) -> dict[str, tuple[int, int]]:
        """channel name -> (count, amount in minor units) of the payments the clients saw APPLIED."""
        totals: dict[str, tuple[int, int]] = {}
        for p in self.applied.values():
            count, amount = totals.get(CHANNEL_NAMES[p.channel], (0, 0))
            totals[CHANNEL_NAMES[p.channel]] = (count + 1, amount + p.amount.amount_minor)
        return totals

    def answered_between(self, since: float, until: float) -> list[payments_pb2.Payment]:
        return [payment for t, payment in self.answered if since <= t < until]


class Orders:
    """Payments on the open PEN loans of the three portfolios, each with its own key: small
    partial payments on cash and vehicle loans from every channel, and on mortgages (which
    take no partial payment, and a prepayment of at least one installment) three
    installments at a time from the digital channels, whose limits allow it."""

    def __init__(self, prefix: str):
        small = [open_loans(t) for t in (types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_VEHICLE)]
        self._small = itertools.cycle([loan for pair in zip(*small) for loan in pair])
        self._mortgages = itertools.cycle([
            (t.loan_id, 3 * (annuity_payment(t.principal_minor, t.annual_rate_bps, t.term_months, t.balloon_minor)
                             + t.asset_insurance_minor))
            for t in generate(RULES_OF_TYPE[types_pb2.LOAN_TYPE_MORTGAGE], **PORTFOLIO)
            if t.currency_code == "PEN" and t.installments_paid < t.term_months])
        self._numbers = itertools.count()
        self.prefix = prefix

    def next(self, channel: str) -> payments_pb2.PaymentOrder:
        n = next(self._numbers)
        key = f"{self.prefix}-{channel}-{n}"
        if channel in ("app", "internet-banking") and n % 2:
            loan_id, amount = next(self._mortgages)
            return order(key, loan_id, amount)
        return order(key, next(self._small), amount=100 + n % 400)


async def pay_online(stub, channel: str, payment_order, metadata, tally: Tally) -> None:
    """One order, retried with the same key until a final answer."""
    for attempt in range(MAX_TRIES):
        try:
            reply = await stub.SubmitPayment(api.SubmitPaymentRequest(payment=payment_order), metadata=metadata,
                                             timeout=CALL_TIMEOUT)
            tally.final(reply.payment)
            return
        except grpc.aio.AioRpcError as error:
            info = error_info(error)
            if info and info.metadata.get("payment_id"):  # journaled and refused by its core: final
                tally.final(payments_pb2.Payment(payment_id=info.metadata["payment_id"], status=REJECTED,
                                                 channel=CHANNEL_VALUES[channel]))
                return
            if error.code() not in RETRY_CODES:
                tally.unexpected.append(f"{payment_order.idempotency_key}: {error.code().name} {error.details()}")
                return
            tally.retried_because[f"{error.code().name}: {(error.details() or '')[:80]}"] += 1
        tally.retries += 1
        await asyncio.sleep(backoff(attempt))
    tally.unresolved.append(payment_order.idempotency_key)


async def closed_loop(router_address: str, pki_dir, channel: str, concurrency: int, orders: Orders, tally: Tally,
                      stop: asyncio.Event) -> None:
    """`concurrency` customers of one channel, each paying again as soon as answered, until stop."""
    async with client_channel(router_address, pki_dir, channel) as ch:
        stub = api_grpc.PaymentServiceStub(ch)

        async def customer():
            while not stop.is_set():
                tally.sent[channel] += 1
                await pay_online(stub, channel, orders.next(channel), None, tally)

        await asyncio.gather(*(customer() for _ in range(concurrency)))


async def online_channel(router_address: str, pki_dir, channel: str, rate: float, orders: Orders, tally: Tally,
                         stop: asyncio.Event, concurrency: int = 64) -> None:
    """Orders at `rate` per second until stop, each retried on its own; returns once all are final."""
    metadata = None
    if channel in ("app", "internet-banking"):
        metadata = (("authorization", "Bearer " + mint(pki_dir, f"CUST-{channel}", channel)),)
    window = asyncio.Semaphore(concurrency)
    async with client_channel(router_address, pki_dir, channel) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        tasks: set[asyncio.Task] = set()

        def done(task: asyncio.Task) -> None:
            tasks.discard(task)
            window.release()

        started = time.monotonic()
        for n in itertools.count():
            if stop.is_set():
                break
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            await window.acquire()
            tally.sent[channel] += 1
            task = asyncio.create_task(pay_online(stub, channel, orders.next(channel), metadata, tally))
            task.add_done_callback(done)
            tasks.add(task)
        await asyncio.gather(*tasks)


async def stream_channel(router_address: str, pki_dir, channel: str, rate: float, orders: Orders, tally: Tally,
                         stop: asyncio.Event) -> None:
    """Orders at `rate` per second on one long-lived StreamPayments stream; when the stream
    breaks, what it did not answer is sent again on a new one; a retryable REJECTED is sent
    again after a pause. Half-closes once every order is final."""
    todo: asyncio.Queue = asyncio.Queue()  # orders to send; None: everything is final, close
    tries: Counter = Counter()
    outstanding = 0
    producing = True

    async def produce():
        nonlocal outstanding, producing
        started = time.monotonic()
        for n in itertools.count():
            if stop.is_set():
                break
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            tally.sent[channel] += 1
            outstanding += 1
            todo.put_nowait(orders.next(channel))
        producing = False
        if outstanding == 0:
            todo.put_nowait(None)

    def settle(key: str) -> None:
        nonlocal outstanding
        outstanding -= 1
        tries.pop(key, None)
        if outstanding == 0 and not producing:
            todo.put_nowait(None)

    def again(payment_order) -> None:
        key = payment_order.idempotency_key
        tries[key] += 1
        if tries[key] >= MAX_TRIES:
            tally.unresolved.append(key)
            settle(key)
            return
        tally.retries += 1
        asyncio.get_running_loop().call_later(backoff(tries[key]), todo.put_nowait, payment_order)

    producer = asyncio.create_task(produce())
    async with client_channel(router_address, pki_dir, channel) as ch:
        stub = api_grpc.PaymentServiceStub(ch)
        while producing or outstanding:
            unanswered: dict[str, payments_pb2.PaymentOrder] = {}
            live = [True]

            async def requests(unanswered=unanswered, live=live):
                while True:
                    payment_order = await todo.get()
                    if not live[0]:  # taken after this stream ended: the next one sends it
                        todo.put_nowait(payment_order)
                        return
                    if payment_order is None:
                        return
                    unanswered[payment_order.idempotency_key] = payment_order
                    yield api.StreamPaymentsRequest(payment=payment_order)

            call = stub.StreamPayments(requests())
            try:
                async for response in call:
                    payment = response.payment
                    payment_order = unanswered.pop(payment.idempotency_key)
                    if payment.status == REJECTED and payment.rejection.reason in RETRY_REASONS:
                        tally.retried_because[payment.rejection.message[:80]] += 1
                        again(payment_order)
                    elif payment.status == APPLIED or payment.loan_type:  # loan type set: journaled, final
                        tally.final(payment)
                        settle(payment.idempotency_key)
                    else:
                        tally.unexpected.append(f"{payment.idempotency_key}: {payment.rejection.message}")
                        settle(payment.idempotency_key)
            except grpc.aio.AioRpcError as error:
                tally.retried_because[f"stream {error.code().name}: {(error.details() or '')[:80]}"] += 1
                if error.code() not in RETRY_CODES and not _cut_by_a_dead_router(error):
                    tally.unexpected.append(f"{channel} stream: {error.code().name} {error.details()}")
                await asyncio.sleep(0.1)
            finally:
                live[0] = False
                call.cancel()
            for payment_order in unanswered.values():  # cut off before its answer: send it again
                again(payment_order)
    await producer


# What each stage recorded, asked of the services themselves (as the operator).


async def core_movements(mesh, pki_dir, day: str) -> dict[str, list[core_api.AppliedMovement]]:
    """core name -> every movement it applied on the day (all pages)."""
    movements: dict[str, list[core_api.AppliedMovement]] = {}
    for name in ("core-cash", "core-mortgage", "core-vehicle"):
        movements[name] = []
        async with tls.channel_for(mesh[name].address, pki_dir, OPERATOR) as ch:
            stub, token = core_grpc.LoanCoreServiceStub(ch), ""
            while True:
                page = await stub.ListAppliedPayments(core_api.ListAppliedPaymentsRequest(
                    business_date=day, page_size=10_000, page_token=token), timeout=30)
                movements[name].extend(page.movements)
                if not (token := page.next_page_token):
                    break
    return movements


async def posted_by_channel(mesh, pki_dir, day: str) -> dict[tuple[str, int], tuple[int, int]]:
    """(channel name, posting status) -> (count, amount) of the bridge's payment postings."""
    async with tls.channel_for(mesh["mainframe-bridge"].address, pki_dir, OPERATOR) as ch:
        summary = await bridge_grpc.MainframeBridgeServiceStub(ch).GetLedgerSummary(
            bridge_api.GetLedgerSummaryRequest(business_date=day), timeout=30)
    return _summed(((CHANNEL_NAMES[line.channel], line.status), line.posting_count, line.amount.amount_minor)
                   for line in summary.lines if not line.reversal)  # no reversals in these runs


async def confirmed_by_channel(mesh, pki_dir, day: str) -> dict[tuple[str, int], tuple[int, int]]:
    """(channel name, payment status) -> (count, amount) of the confirmation log."""
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, OPERATOR) as ch:
        summary = await conf_grpc.ConfirmationServiceStub(ch).SummarizeConfirmations(
            conf_api.SummarizeConfirmationsRequest(business_date=day), timeout=30)
    return _summed(((CHANNEL_NAMES[t.channel], t.status), t.count, t.amount.amount_minor) for t in summary.totals)


def _summed(rows) -> dict:
    totals: dict = {}
    for key, count, amount in rows:
        old = totals.get(key, (0, 0))
        totals[key] = (old[0] + count, old[1] + amount)
    return totals


async def subscribed(mesh, pki_dir, channel: str, wanted: set[str], timeout: float = 30.0) -> list[Confirmation]:
    """A channel's confirmations from the beginning of its stream, in arrival order, until wanted are in."""
    seen: list[Confirmation] = []
    ids: set[str] = set()
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", channel)) as ch:
        call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
            conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
        try:
            async with asyncio.timeout(timeout):
                async for response in call:
                    seen.extend(response.batch.confirmations)
                    ids.update(c.payment_id for c in response.batch.confirmations)
                    if wanted <= ids:
                        break
        except TimeoutError:
            pass
        call.cancel()
    return seen


def point_reconciliation_at(monkeypatch, mesh, pki_dir) -> None:
    """paymesh.config.address_of reads PAYMESH_<SERVICE>_ADDR: aim it at this test's processes."""
    for name, service in mesh.items():
        monkeypatch.setenv(f"{SERVICES[name].env_prefix}_ADDR", service.address)
    monkeypatch.setenv("PAYMESH_PKI_DIR", str(pki_dir))


async def reconciled(settings, day: str, timeout: float = 60.0) -> reconcile.Outcome:
    """The reconciliation of every stage, asked again until it agrees (the outboxes drain) or timeout."""
    every_stage = {s.stage for s in reconcile.default_sources(settings)}
    return await settle(settings, day, every_stage, timeout=timeout)
