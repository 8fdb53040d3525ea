"""PaymentService: who is calling, what their channel may do, and the answer in
the channel's terms (a status for an online call, a REJECTED payment on a stream)."""

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc, payments_pb2
from payment_router.batch import batch_results, upload_batch
from payment_router.channel_policy import ChannelPolicy
from payment_router.journal import Accepted, Outcome
from payment_router.inquiry import INQUIRY_TIMEOUT, customer_loans, loan_debt
from payment_router.orders import PaymentIds, body_hash, validate
from payment_router.payment_stream import PaymentStream
from payment_router.router import BATCH, ONLINE, STREAM, Router
from payment_router.tokens import TokenRefused, TokenVerifier
from paymesh import telemetry
from paymesh.errors import Refused, abort, abort_as, error_info, reason_name
from paymesh.limits import OpenCalls
from paymesh.tls import peer_identity
from paymesh.topology import CHANNEL_VALUES

log = logging.getLogger(__name__)
# Day files open at once in this router, whoever sends them: each holds its lines (up to 100,000,
# some 41 MiB) until its trailer, and a channel's devices each have their own 4 (docs/load-and-security.md).
DEFAULT_MAX_OPEN_UPLOADS = 8
ROUTER = "payment-router"  # who refused, on paymesh_refusals_total (a core's refusals name the core)
ONLINE_WAIT_FOR_CORE = 0.5  # seconds an online payment waits for a core that is reconnecting
BATCH_WAIT_FOR_CORE = 10.0  # seconds a batch line waits for a core that is reconnecting


@dataclass(frozen=True)
class Caller:
    name: str  # the channel's certificate name
    channel: types_pb2.Channel
    policy: ChannelPolicy
    customer_id: str
    device_id: str = ""  # from a device's own certificate

    @property
    def identity(self) -> str:
        """Who holds open calls: the channel's certificate, or one of its devices'."""
        return f"{self.name}/{self.device_id}" if self.device_id else self.name


class PaymentService(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(self, router: Router, policies: dict[str, ChannelPolicy], tokens: TokenVerifier, core_stubs,
                 ids: PaymentIds):
        self.router = router
        self.ids = ids
        self.policies = policies
        self.tokens = tokens
        self.core_stubs = core_stubs  # loan type -> LoanCoreServiceStub, for reversals
        self.open_calls = OpenCalls()
        self.max_open_uploads = int(os.environ.get("PAYMESH_ROUTER_MAX_OPEN_UPLOADS") or DEFAULT_MAX_OPEN_UPLOADS)

    async def SubmitPayment(self, request, context):
        started = time.perf_counter()
        caller = await self._caller(context, "submit")
        try:
            return await self._submit(caller, request, context, started)
        finally:  # every answer, a refusal too: what the customer waited
            telemetry.record_online_payment(caller.name, time.perf_counter() - started)

    async def _submit(self, caller: Caller, request, context, started: float) -> api.SubmitPaymentResponse:
        try:
            async with asyncio.timeout(_remaining(context)):  # no task of its own, unlike wait_for
                payment = await self.pay(caller, request.payment)
        except Refused as refused:
            telemetry.count_refusal(caller.name, reason_name(refused.reason), ROUTER)
            await refused.abort(context)
        except TimeoutError:
            await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                        "the payment is still being applied; retry with the same idempotency key for its result",
                        errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE)
        if payment.status == types_pb2.PAYMENT_STATUS_REJECTED:  # (the core's refusal: counted where it came)
            await Refused.of(payment.rejection).abort(context, payment_id=payment.payment_id)
        if not payment.confirmation_sequence:  # a retry of a confirmed payment has it already: no wait
            payment.confirmation_sequence = await self.router.outbox.confirmation_sequence(
                payment.payment_id, min(1.0, _remaining(context)))
        self.router.observe_online(time.perf_counter() - started)
        return api.SubmitPaymentResponse(payment=payment)

    async def StreamPayments(self, request_iterator, context):
        caller = await self._caller(context, "stream", cost=0)
        try:
            release = self._take_open("StreamPayments", caller, caller.policy.max_open_streams)
        except Refused as refused:
            await refused.abort(context)
        stream = PaymentStream(self, caller)
        try:
            async for response in stream.responses(request_iterator):
                yield response
        finally:
            release()
        if stream.idle:
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        f"this stream sent nothing for {caller.policy.stream_idle_seconds:g} s and is closed; "
                        "open a new one when there are payments", errors_pb2.ERROR_REASON_QUOTA_EXCEEDED,
                        quota=(caller.identity, f"idle at most {caller.policy.stream_idle_seconds:g} s"))
        if stream.failed:
            log.error("stream orders left unanswered", extra={"error": type(stream.failed[0]).__name__})
            await abort(context, grpc.StatusCode.UNAVAILABLE,
                        "some payments on this stream could not be recorded; send the unanswered ones again",
                        errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0)

    async def UploadBatch(self, request_iterator, context):
        caller = await self._caller(context, "batch")
        try:
            release = self._take_open("UploadBatch", caller, caller.policy.max_open_uploads)
            try:
                release_router = self.open_calls.take("UploadBatch", "this router", self.max_open_uploads)
            except Refused:
                release()
                raise
            try:
                return await upload_batch(self, caller, request_iterator)
            finally:
                release_router()
                release()
        except Refused as refused:
            await refused.abort(context)

    async def ListBatchResults(self, request, context):
        caller = await self._caller(context, "batch")
        try:
            return await batch_results(self, caller, request)
        except Refused as refused:
            await refused.abort(context)

    async def GetLoanDebt(self, request, context):
        caller = await self._caller(context, "inquire")
        try:
            debt = await loan_debt(self.core_stubs, request.loan_id, caller.customer_id,
                                   min(INQUIRY_TIMEOUT, _remaining(context)))
        except Refused as refused:
            await refused.abort(context)
        return api.GetLoanDebtResponse(debt=debt)

    async def ListCustomerLoans(self, request, context):
        caller = await self._caller(context, "customer_loans")
        try:
            loans = await customer_loans(self.core_stubs, caller.customer_id, min(INQUIRY_TIMEOUT, _remaining(context)))
        except Refused as refused:
            await refused.abort(context)
        return api.ListCustomerLoansResponse(loans=loans)

    async def GetPayment(self, request, context):
        caller = await self._caller(context, "get")
        return api.GetPaymentResponse(payment=await self._own_payment(caller, request.payment_id, context))

    async def ReversePayment(self, request, context):
        caller = await self._caller(context, "reverse")
        payment = await self._own_payment(caller, request.payment_id, context)
        if payment.status == types_pb2.PAYMENT_STATUS_REVERSED:
            return api.ReversePaymentResponse(payment=payment)
        if payment.status != types_pb2.PAYMENT_STATUS_APPLIED:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, "only an applied payment can be reversed",
                        errors_pb2.ERROR_REASON_REVERSAL_NOT_ALLOWED)
        # A reversal is booked on the business day it happens; the payment's own day stays as reconciled.
        _, reversal_date = self.router.booking.dates()
        reversal = loan_core_service_pb2.ReversePaymentRequest(
            reversal_id=self.ids.of(caller.name, f"reversal\n{request.idempotency_key or payment.payment_id}",
                                    caller.customer_id),
            payment_id=payment.payment_id, reason=request.reason[:200], business_date=reversal_date,
        )
        try:
            reply = await self.core_stubs[payment.loan_type].ReversePayment(reversal, timeout=_remaining(context))
        except grpc.aio.AioRpcError as error:
            await _abort_core_error(context, error, payment.payment_id)
        payment.status = types_pb2.PAYMENT_STATUS_REVERSED
        # The core's posting says which day it booked the reversal in (the first call's, on a replay).
        payment.reversal_business_date = reply.posting.business_date
        payment.outstanding_balance.CopyFrom(reply.outstanding_balance)
        # What the reversal took back: the allocation as the core last revised it (a core of before
        # revisions does not say: then the allocation the payment was answered with).
        payment.reversed_allocation.CopyFrom(reply.allocation if reply.HasField("allocation") else payment.allocation)
        payment.result_time.FromNanoseconds(time.time_ns())
        await self.router.record_reversal(payment, reply.posting, reply.revisions)
        return api.ReversePaymentResponse(payment=payment)

    async def pay(self, caller: Caller, order: payments_pb2.PaymentOrder) -> payments_pb2.Payment:
        """The online payment's final state; raises Refused (nothing written) for a refused order.
        The caller learns at once that its core is down."""
        entry = self._entry(caller, order, order.idempotency_key)
        if caller.customer_id and not caller.policy.third_party_payments:
            # Only the customer's own loans: another's is NOT_FOUND, as in the inquiry.
            await loan_debt(self.core_stubs, order.loan_id, caller.customer_id, INQUIRY_TIMEOUT)
        if not await self.router.core_available(entry.payment.loan_type, timeout=ONLINE_WAIT_FOR_CORE):
            return await self._known_or_unavailable(entry.payment.payment_id)
        (outcome,) = await asyncio.shield(self.router.accept([entry], ONLINE))
        _check_replay(entry, outcome)
        return await self.router.results_of([outcome.payment], ONLINE)[0]

    async def pay_many(self, caller: Caller, orders: list[tuple[payments_pb2.PaymentOrder, str]],
                       batch_id: str = "", value_dates: list[dt.date] | None = None,
                       ) -> list[tuple[payments_pb2.Payment, bool]]:
        """Many orders (each with its idempotency key) at once, journaled in one commit: per order,
        in order, its final state and whether it was journaled before (a replay). A refused order
        comes back REJECTED with its reason. A batch line waits a while for a core that is down;
        its value date is when it was collected (value_dates), not now."""
        answers: list = [None] * len(orders)
        accepted: list[tuple[int, Accepted]] = []
        available: dict[types_pb2.LoanType, bool] = {}
        for n, (order, key) in enumerate(orders):
            try:
                entry = self._entry(caller, order, key, batch_id, value_dates[n] if value_dates else None)
                loan_type = entry.payment.loan_type
                if loan_type not in available:
                    available[loan_type] = await self.router.core_available(
                        loan_type, timeout=BATCH_WAIT_FOR_CORE if batch_id else ONLINE_WAIT_FOR_CORE)
                if not available[loan_type]:
                    answers[n] = await self._known_or_unavailable(entry.payment.payment_id), True
                    continue
                accepted.append((n, entry))
            except Refused as refused:
                answers[n] = self.rejected(caller, order, refused, key=key), False
        priority = BATCH if batch_id else STREAM  # a day file's lines, else a switch's stream
        try:
            outcomes = await asyncio.shield(self.router.accept([entry for _, entry in accepted], priority)) \
                if accepted else []
        except Refused as refused:  # the journal cannot be written just now: each answered, to be sent again
            for n, _ in accepted:
                answers[n] = self.rejected(caller, orders[n][0], refused, key=orders[n][1]), False
            return answers
        waiting = []
        for (n, entry), outcome in zip(accepted, outcomes):
            try:
                _check_replay(entry, outcome)
                waiting.append((n, outcome))
            except Refused as refused:
                answers[n] = self.rejected(caller, orders[n][0], refused, key=orders[n][1]), False
        for (n, outcome), result in zip(waiting, self.router.results_of([o.payment for _, o in waiting], priority)):
            answers[n] = await result, not outcome.new
        return answers

    async def with_confirmation_sequences(self, payments: list[payments_pb2.Payment], timeout: float = 1.0) -> None:
        """Fills in each journaled payment's confirmation sequence, waiting (together, at most timeout)
        for those confirmations has not acknowledged yet: the answer tells the channel where the payment
        stands in its subscription. A refusal the router answered itself was never confirmed."""
        missing = [p for p in payments if not p.confirmation_sequence and p.HasField("accept_time")]
        sequences = await asyncio.gather(*(self.router.outbox.confirmation_sequence(p.payment_id, timeout)
                                           for p in missing))
        for payment, sequence in zip(missing, sequences):
            payment.confirmation_sequence = sequence

    def _entry(self, caller: Caller, order: payments_pb2.PaymentOrder, key: str, batch_id: str = "",
               value_date: dt.date | None = None) -> Accepted:
        """The order, valid for its channel, as the payment to journal; raises Refused."""
        loan_type = validate(order, caller.policy, key)
        value, booking = self.router.booking.dates(value_date)
        payment = payments_pb2.Payment(
            payment_id=self.ids.of(caller.name, key, caller.customer_id), channel=caller.channel, idempotency_key=key,
            loan_id=order.loan_id, loan_type=loan_type, amount=order.amount, status=types_pb2.PAYMENT_STATUS_ACCEPTED,
            business_date=booking, value_date=value, customer_id=caller.customer_id, device_id=caller.device_id,
            prepayment_mode=order.prepayment_mode, channel_reference=order.channel_reference,
        )
        payment.accept_time.FromNanoseconds(time.time_ns())
        return Accepted(payment, body_hash(order), batch_id)

    async def _known_or_unavailable(self, payment_id: str) -> payments_pb2.Payment:
        """With its core down, a payment already final is still answered; anything else is UNAVAILABLE."""
        known = await self.router.journal.get(payment_id)
        if known is not None and known.status != types_pb2.PAYMENT_STATUS_ACCEPTED:
            return known
        raise Refused(errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                      "the loan core for this loan is unavailable; retry shortly")

    def rejected(self, caller: Caller, order, refused: Refused, key: str = "") -> payments_pb2.Payment:
        """A refusal as a REJECTED payment (streams and batch lines); nothing was journaled."""
        telemetry.count_refusal(caller.name, reason_name(refused.reason), ROUTER)
        key = key or order.idempotency_key
        value, booking = self.router.booking.dates()
        return payments_pb2.Payment(
            payment_id=self.ids.of(caller.name, key, caller.customer_id) if key else "", channel=caller.channel,
            idempotency_key=key, loan_id=order.loan_id, amount=order.amount,
            status=types_pb2.PAYMENT_STATUS_REJECTED, rejection=refused.rejection(), business_date=booking,
            value_date=value,
        )

    async def _own_payment(self, caller: Caller, payment_id: str, context) -> payments_pb2.Payment:
        payment = await self.router.payment(payment_id) if payment_id else None
        if payment is None or payment.channel != caller.channel or payment.customer_id != caller.customer_id:
            # Another channel's payment, or another customer's of a digital channel, is not found,
            # exactly like one that does not exist (OWASP API1: object-level authorization).
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no payment {payment_id!r} for this channel",
                        errors_pb2.ERROR_REASON_PAYMENT_NOT_FOUND)
        return payment

    def _take_open(self, kind: str, caller: Caller, limit: int) -> Callable[[], None]:
        """One open call of kind for the caller's identity (at most limit) and, for a digital
        channel, for its customer too (at most max_open_per_customer), so one customer cannot hold
        all of the app's; raises Refused over either. Returns the release of both."""
        release = self.open_calls.take(kind, caller.identity, limit)
        if not caller.customer_id:
            return release
        try:
            release_customer = self.open_calls.take(
                kind, f"{caller.identity} customer {caller.customer_id}", caller.policy.max_open_per_customer,
                logged_as=f"{caller.identity} customer")  # no customer id in a log line
        except Refused:
            release()
            raise

        def release_both() -> None:
            release_customer()
            release()
        return release_both

    async def _caller(self, context, operation: str, cost: int = 1) -> Caller:
        identity = peer_identity(context)  # the caller policy already admitted only channels
        assert identity is not None, "the caller policy admits no caller without a mesh identity"
        policy = self.policies[identity.name]
        if operation not in policy.operations:
            await abort(context, grpc.StatusCode.PERMISSION_DENIED,
                        f"the {identity.name} channel may not use {operation}",
                        errors_pb2.ERROR_REASON_OPERATION_NOT_ALLOWED)
        wait = policy.bucket.take(cost) if cost else 0.0
        if wait:
            telemetry.count_refusal(identity.name, reason_name(errors_pb2.ERROR_REASON_RATE_LIMITED), ROUTER)
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"over the {identity.name} channel's rate limit; retry in {wait:.3f}s",
                        errors_pb2.ERROR_REASON_RATE_LIMITED, retry_after_seconds=wait)
        customer_id = ""
        if policy.requires_token:
            authorization = dict(context.invocation_metadata() or ()).get("authorization")
            try:
                customer_id = self.tokens.customer_of(authorization, identity.name)
            except TokenRefused as refused:
                await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(refused),
                            errors_pb2.ERROR_REASON_TOKEN_INVALID)
        return Caller(identity.name, CHANNEL_VALUES[identity.name], policy, customer_id, identity.device)


def _check_replay(entry: Accepted, outcome: Outcome) -> None:
    """A key sent before: the same payment (answered as it stands) or a refusal."""
    if outcome.body_hash != entry.body_hash:
        raise Refused(errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                      f"idempotency key {entry.payment.idempotency_key!r} was used for a different payment")
    if outcome.archived:
        known = outcome.payment
        status = types_pb2.PaymentStatus.Name(known.status).removeprefix("PAYMENT_STATUS_")
        raise Refused(errors_pb2.ERROR_REASON_PAYMENT_ARCHIVED,
                      f"this payment was made before, on business day {known.business_date} ({status}); that day"
                      " is archived, so it is not applied again: its full answer is in the day's archive",
                      metadata={"payment_id": known.payment_id, "business_date": known.business_date,
                                "payment_status": status})


# The core's own refusals (its rich status: a person's message, a reason) reach the channel as they
# are; a transport failure's text names hosts and ports, so the channel gets the mesh's own words.
_CORE_REFUSALS = frozenset([grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                            grpc.StatusCode.FAILED_PRECONDITION])


async def _abort_core_error(context, error: grpc.aio.AioRpcError, payment_id: str) -> None:
    if error.code() in _CORE_REFUSALS and error_info(error) is not None:
        await abort_as(context, error)  # with its details as they came: ErrorInfo, BadRequest
    log.warning("the loan core did not answer a reversal", extra={
        "payment_id": payment_id, "code": error.code().name, "detail": (error.details() or "")[:200]})
    await abort(context, grpc.StatusCode.UNAVAILABLE, "the loan core for this loan is unavailable; retry the reversal "
                "with the same idempotency key", errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                retry_after_seconds=1.0)


def _remaining(context) -> float:
    remaining = context.time_remaining()
    return 30.0 if remaining is None else max(remaining, 0.001)

