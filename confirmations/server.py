"""The confirmations server: the router publishes, each channel subscribes to its own.

Its store is a SQLite file by default, or the service's PostgreSQL database when
PAYMESH_CONFIRMATIONS_DATABASE_URL (or PAYMESH_DATABASE_URL) is set. On PostgreSQL an active and a
standby process may share the database: the lease (paymesh.lease) says which one serves; the
standby answers health NOT_SERVING and every call UNAVAILABLE until it takes the lease over, and
every write is fenced by it (so the confirmation sequence is the holder's alone: confirmations/log.py).
"""

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb, confirmation_service_pb2_grpc
from confirmations import log, validation, webhook_store
from confirmations.channels import channel_name, channel_of, quota_subject
from confirmations.config import ConfirmationSettings
from confirmations.fanout import FanOut, LiveBuffer
from confirmations.subscriptions import follow
from confirmations.webhook_rpcs import WebhookRpcs
from confirmations.webhooks import WebhookDispatcher
from paymesh import postgres, server, telemetry
from paymesh.authz import Bulkhead, CallerPolicy
from paymesh.config import Settings
from paymesh.errors import Refused, abort
from paymesh.group_commit import PRIORITY_LANES, GroupCommit, lane_of
from paymesh.lease import STORE_LOST, FencedStore, Lease, fenced, refuse_on_standby, refuse_store_lost
from paymesh.limits import OpenCalls
from paymesh.postgres import PostgresStore
from paymesh.sqlite import Store
from paymesh.streams import in_order
from paymesh.tls import peer_identity
from paymesh.topology import CHANNEL_IDENTITIES, OPERATOR, ROUTERS, SERVICES

logger = logging.getLogger(__name__)
SERVICE = "confirmations"
_FULL_NAME = pb.DESCRIPTOR.services_by_name["ConfirmationService"].full_name
POLICY = CallerPolicy(
    default=CHANNEL_IDENTITIES,
    per_method={
        f"/{_FULL_NAME}/PublishConfirmations": ROUTERS,
        f"/{_FULL_NAME}/SummarizeConfirmations": frozenset([OPERATOR]),
        f"/{_FULL_NAME}/ListConfirmations": frozenset([OPERATOR]),
        f"/{_FULL_NAME}/DropBusinessDay": frozenset([OPERATOR]),
    },
)
PUBLISH_IN_FLIGHT = 64
# Publish messages per commit at most: one commit's fan-out and acks stay short.
MAX_MESSAGES_PER_COMMIT = 512
INVALID = grpc.StatusCode.INVALID_ARGUMENT
Start = pb.StartPosition


def open_store(data_dir: Path, environ: dict[str, str] | None = None) -> Store | PostgresStore:
    """The confirmation store: the service's PostgreSQL database when PAYMESH_CONFIRMATIONS_DATABASE_URL
    or PAYMESH_DATABASE_URL is set (migrated to confirmations/schema/), else the SQLite file in the data
    folder. Raises DatabaseUnavailable (the process then waits NOT_SERVING: paymesh.server)."""
    url = postgres.database_url(SERVICES[SERVICE].env_prefix, environ)
    if url:
        return PostgresStore(url, log.POSTGRES_SCHEMA_DIR, name=SERVICE)
    return sqlite_store(data_dir)


def sqlite_store(data_dir: Path) -> Store:
    return Store(data_dir / "confirmations.db", log.SCHEMA + webhook_store.SCHEMA,
                 added_columns=webhook_store.ADDED_COLUMNS)  # (RotateWebhookSecret's columns)


class ConfirmationService(WebhookRpcs, confirmation_service_pb2_grpc.ConfirmationServiceServicer):
    def __init__(self, store: "Path | Store | FencedStore", settings: ConfirmationSettings,
                 lease: Lease | None = None):
        """store: open_store's (fenced by lease on PostgreSQL), or a data folder for its SQLite file.
        lease: on PostgreSQL, the active/standby lease; None on SQLite, where the process is the
        file's only one and always active."""
        self.settings = settings
        self.store = sqlite_store(store) if isinstance(store, Path) else store
        self.lease = lease
        self._set_serving: Callable[[bool], Awaitable[None]] | None = None
        self.fanout = FanOut()
        self.open_calls = OpenCalls()
        self.dispatcher = WebhookDispatcher(self.store, settings)
        self.commits = GroupCommit(self.store, log.append, name="confirmations-commit",
                                   max_weight=MAX_MESSAGES_PER_COMMIT, on_commit=self._committed,
                                   lanes=PRIORITY_LANES)
        self._head: int | None = None
        self._sampling: asyncio.Task | None = None
        self.figures = telemetry.Figures("confirmations")

    def add_to(self, grpc_server) -> list[str]:
        confirmation_service_pb2_grpc.add_ConfirmationServiceServicer_to_server(self, grpc_server)
        return [_FULL_NAME]

    @property
    def active(self) -> bool:
        return self.lease is None or self.lease.active

    async def start(self) -> None:
        """On PostgreSQL, the lease: taken at once if no other process holds it, else this process is
        its standby (the webhook dispatcher then starts when it takes the lease over)."""
        if self.lease is not None:
            assert isinstance(self.store, FencedStore)
            await self.store.start()
            await self.lease.start(self._lease_changed)
        elif self.active:
            self.dispatcher.start()
        if telemetry.metrics_read():
            self._sampling = asyncio.get_running_loop().create_task(
                telemetry.sample_forever("confirmations", self.sample))

    async def follow_health(self, set_serving: Callable[[bool], Awaitable[None]]) -> None:
        """SERVING while this process holds the lease (always, on SQLite); the standby NOT_SERVING."""
        self._set_serving = set_serving
        await set_serving(self.active)

    async def _lease_changed(self, active: bool) -> None:
        """Taken: what this process knew of the log is forgotten (the other holder wrote it meanwhile),
        then the dispatcher starts and health says SERVING. Lost: NOT_SERVING, the dispatcher stops,
        and the open subscriptions end UNAVAILABLE (they would hear of no new confirmation here)."""
        if active:
            self._head = None
            self.dispatcher.start()
        else:
            self.fanout.end_all()
            await self.dispatcher.stop()
        logger.info("active: the lease holder" if active else "standby: NOT_SERVING", extra={"service": SERVICE})
        if self._set_serving is not None:
            await self._set_serving(active)

    async def _refuse_unless_active(self, context) -> None:
        if not self.active:
            await refuse_on_standby(context, SERVICE)

    async def sample(self) -> None:
        """Each durable consumer's lag, for the gauge (a consumer's name is the channel's own, a few a channel)."""
        lags = await self.store.read(log.consumer_lags)  # (not on the store's thread)
        self.figures.set("paymesh.confirmations.consumer.lag", [
            (lag, {"channel": channel_name(channel), "consumer": name})
            for channel, name, lag in lags])

    async def stop(self, grace: float) -> None:
        if self._sampling:
            self._sampling.cancel()
            await asyncio.gather(self._sampling, return_exceptions=True)
        await self.commits.close()
        await self.dispatcher.close()
        if self.lease is not None:  # after the last commit: the standby takes over at once
            await self.lease.stop()
        self.store.close()

    async def head(self) -> int:
        if self._head is None:
            self._head = max(await self.store.run(log.head), self._head or 0)
        return self._head

    def _committed(self, results: list[log.Appended]) -> None:
        """After each commit, before any publisher hears: the new confirmations go to the subscribers."""
        new = [confirmation for appended in results for confirmation in appended.new]
        if new:
            self._head = new[-1].sequence
            self.fanout.publish(new)
        if any(appended.deliveries for appended in results):  # (only the lanes of these channels look)
            self.dispatcher.wake({confirmation.channel for confirmation in new})

    async def PublishConfirmations(self, request_iterator, context):
        # Messages read ahead of their acks, in order: enough to keep group commits full, bounded for memory.
        bulkhead = Bulkhead(context)
        async for ready in in_order(request_iterator, partial(self._publish, bulkhead), PUBLISH_IN_FLIGHT):
            # Messages committed by the same group commit share one response: fewer, larger writes.
            # Acks are added in place (a PublishAck built apart would be copied into the response).
            response = pb.PublishConfirmationsResponse()
            for payment_ids, checked, appended in ready:
                if appended is _NOT_WRITTEN:
                    await self._refuse_unless_active(context)  # deposed meanwhile: the caller goes to the holder
                    await abort(context, grpc.StatusCode.UNAVAILABLE, "the confirmation log cannot be written now;"
                                " publish again", errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE,
                                retry_after_seconds=1.0)
                _add_acks(response, payment_ids, checked, appended)
            yield response

    async def _publish(self, bulkhead: Bulkhead, request: pb.PublishConfirmationsRequest):
        """(payment ids, each item's check, what its commit appended) of one message, once durable;
        what it appended is None when no item was valid, _NOT_WRITTEN when the commit failed."""
        items = request.confirmations
        # Per item: another bulkhead's refusal, the violations, or [] when valid.
        checked = [bulkhead.refusal(item.channel) or validation.confirmation(item) for item in items]
        valid = [item for item, problem in zip(items, checked) if problem == []]
        # A day file's results commit after the online ones waiting with them.
        durable = self.commits.submit(valid, lane_of(request.priority)) if valid else None
        received = time.time_ns()
        payment_ids = [item.payment_id for item in items]
        for payment_id, traceparent in zip(payment_ids, request.traceparents):
            telemetry.record_item_span("confirmations log confirmation", traceparent, received,
                                       {"payment_id": payment_id})
        try:
            appended = await durable if durable is not None else None
        except Exception:  # the group commit logged why
            appended = _NOT_WRITTEN
        return payment_ids, checked, appended

    async def Subscribe(self, request, context):
        channel = channel_of(peer_identity(context))
        name = request.consumer_name
        violations = validation.consumer_name(name, False) + validation.subscription_filter(request.filter)
        start = request.start_position or (Start.START_POSITION_CONSUMER if name else Start.START_POSITION_NOW)
        if start not in Start.values():
            violations.append(("start_position", f"{start} is not a start position"))
        if start == Start.START_POSITION_CONSUMER and not name:
            violations.append(("consumer_name", "is required to start from a consumer's position"))
        if violations:
            await abort(context, INVALID, "the subscription request is malformed",
                        errors_pb2.ERROR_REASON_INVALID_FIELD, violations=violations)
        head = await self.head()
        if start == Start.START_POSITION_CONSUMER:
            position = await self.store.run(log.consumer_position, channel, name)
            if position is None:
                await abort(context, grpc.StatusCode.NOT_FOUND, f"no consumer named {name!r} for this channel;"
                            " subscribe once with another start position to create it",
                            errors_pb2.ERROR_REASON_CONSUMER_NOT_FOUND)
        elif start == Start.START_POSITION_AFTER_SEQUENCE:
            position = request.after_sequence
            if position > head:
                await abort(context, grpc.StatusCode.OUT_OF_RANGE, f"after_sequence {position} is beyond the end of"
                            f" the log ({head})", errors_pb2.ERROR_REASON_CURSOR_OUT_OF_RANGE,
                            metadata={"head_sequence": str(head)})
        else:
            position = 0 if start == Start.START_POSITION_BEGINNING else head
        if start in (Start.START_POSITION_CONSUMER, Start.START_POSITION_AFTER_SEQUENCE):
            await self._check_not_dropped(context, position, name)
        try:
            # Before any buffer is made: an open subscription holds up to subscriber_buffer confirmations.
            release = self.open_calls.take("Subscribe", quota_subject(channel), self.settings.max_subscriptions)
        except Refused as refused:
            await refused.abort(context)
        try:
            if name and start != Start.START_POSITION_CONSUMER:
                await self.store.transaction(log.create_consumer, channel, name, position,
                                             self.settings.max_consumers)
            logger.info("subscribed", extra={"channel": channel, "consumer": name, "position": position})
            buffer = LiveBuffer(channel, request.filter.loan_types, request.filter.statuses,
                                self.settings.subscriber_buffer)
            buffer.ended = not self.active  # the lease lost while this call was being set up
            async for response in follow(self.store, self.fanout, buffer, position,
                                         self.settings.heartbeat_seconds, lambda: self._head or 0):
                yield response
            if buffer.ended:  # the lease lost: the subscriber resumes from its position on the new holder
                await abort(context, grpc.StatusCode.UNAVAILABLE, f"this {SERVICE} process lost the lease and is the"
                            " standby now: subscribe again (from your position) to the active one",
                            errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0,
                            metadata={"role": "standby"})
        except Refused as refused:  # over the channel's durable consumers
            await refused.abort(context)
        finally:
            release()

    async def AcknowledgeConfirmations(self, request, context):
        channel = channel_of(peer_identity(context))
        violations = validation.consumer_name(request.consumer_name, True)
        if violations:
            await abort(context, INVALID, "the consumer name is malformed", errors_pb2.ERROR_REASON_INVALID_FIELD,
                        violations=violations)
        head = await self.head()
        if request.sequence > head:
            await abort(context, grpc.StatusCode.OUT_OF_RANGE, f"sequence {request.sequence} is beyond the end of the"
                        f" log ({head})", errors_pb2.ERROR_REASON_CURSOR_OUT_OF_RANGE,
                        metadata={"head_sequence": str(head)})
        position = await self.store.transaction(log.acknowledge, channel, request.consumer_name, request.sequence)
        if position is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no consumer named {request.consumer_name!r} for this"
                        " channel", errors_pb2.ERROR_REASON_CONSUMER_NOT_FOUND)
        return pb.AcknowledgeConfirmationsResponse(consumer_name=request.consumer_name, acknowledged_sequence=position)

    async def SummarizeConfirmations(self, request, context):
        await _check_business_date(context, request.business_date)
        rows = await self.store.run(log.summarize, request.business_date)
        return pb.SummarizeConfirmationsResponse(business_date=request.business_date, totals=[
            pb.ConfirmationTotal(channel=channel, loan_type=loan_type, status=status, count=count,
                                 amount=types_pb2.Money(currency_code=currency, amount_minor=total))
            for channel, loan_type, status, currency, count, total in rows
        ])

    async def _check_not_dropped(self, context, position: int, consumer: str) -> None:
        """A resume inside a dropped (archived) day's range would silently miss its confirmations: refused."""
        dropped = await self.store.run(log.dropped_after, position)
        if dropped is None:
            return
        days, last = dropped
        then = (f"acknowledge sequence {last} for consumer {consumer!r}" if consumer else
                f"subscribe after sequence {last}")
        await abort(context, grpc.StatusCode.OUT_OF_RANGE,
                    f"confirmations after sequence {position} of business days {days} were archived and dropped from"
                    f" the log: read them from the day's archive, then {then}",
                    errors_pb2.ERROR_REASON_CURSOR_OUT_OF_RANGE,
                    metadata={"dropped_business_dates": days, "resume_after_sequence": str(last)})

    async def DropBusinessDay(self, request, context):
        # Whether the day is closed is the ledger's to say, not the log's: paymesh archive drops here only
        # after the router (which knows) has dropped the day.
        await _check_business_date(context, request.business_date)
        try:
            dropped = await self.store.transaction(log.drop_day, request.business_date)
        except Refused as refused:
            await refused.abort(context, business_date=request.business_date)
        logger.info("business day dropped from the log",
                    extra={"business_date": request.business_date, "confirmations": dropped.dropped_count})
        return pb.DropBusinessDayResponse(dropped=dropped)

    async def ListConfirmations(self, request, context):
        await _check_business_date(context, request.business_date)
        confirmations = await self.store.run(log.day_confirmations, request.business_date)
        for start in range(0, len(confirmations), 1000):
            yield pb.ListConfirmationsResponse(confirmations=confirmations[start:start + 1000])


# What a message's commit appended when the commit failed (nothing of it was written).
_NOT_WRITTEN = log.Appended()


def _add_acks(response, payment_ids, checked, appended: log.Appended | None) -> None:
    """The message's acks: each valid item's sequence and whether it was a duplicate, or the item's refusal."""
    results = iter(appended.acks if appended else ())
    for payment_id, problem in zip(payment_ids, checked):
        if isinstance(problem, errors_pb2.Rejection):
            response.acks.add(payment_id=payment_id, rejection=problem)
        elif problem:
            response.acks.add(payment_id=payment_id, rejection=_rejection("the confirmation is malformed", problem))
        else:
            sequence, duplicate = next(results)
            response.acks.add(payment_id=payment_id, sequence=sequence, duplicate=duplicate)


def _rejection(message: str, violations):
    return errors_pb2.Rejection(
        reason=errors_pb2.ERROR_REASON_INVALID_FIELD, message=message,
        field_violations=[errors_pb2.FieldViolation(field=f, description=d) for f, d in violations],
    )


def _on_the_holder(rpc):
    """An RPC answered by the lease holder alone: refused UNAVAILABLE (role standby) on the standby;
    a write that found the lease taken over (LeaseLost: nothing of it was written), or a database
    that cannot be reached just now (a failover), is UNAVAILABLE too, for the caller to send again."""
    if inspect.isasyncgenfunction(rpc):
        @functools.wraps(rpc)
        async def streaming(self, request, context):
            await self._refuse_unless_active(context)
            try:
                async for response in rpc(self, request, context):
                    yield response
            except STORE_LOST as failed:
                await refuse_store_lost(context, SERVICE, failed)
        return streaming

    @functools.wraps(rpc)
    async def unary(self, request, context):
        await self._refuse_unless_active(context)
        try:
            return await rpc(self, request, context)
        except STORE_LOST as failed:
            await refuse_store_lost(context, SERVICE, failed)
    return unary


for _method in pb.DESCRIPTOR.services_by_name["ConfirmationService"].methods:
    setattr(ConfirmationService, _method.name, _on_the_holder(getattr(ConfirmationService, _method.name)))


def service_on(store: Store | PostgresStore, settings: ConfirmationSettings) -> ConfirmationService:
    """The service on a store of open_store's; on PostgreSQL with its lease (PAYMESH_LEASE_*), the
    store fenced by it: an active and a standby process may share the database."""
    if not isinstance(store, PostgresStore):
        return ConfirmationService(store, settings)
    fenced_store, lease = fenced(store, SERVICE)
    return ConfirmationService(fenced_store, settings, lease)


def build(settings: Settings) -> ConfirmationService:
    return service_on(open_store(settings.data_dir), ConfirmationSettings.from_env())


def main() -> None:
    server.main(SERVICE, POLICY, build)


async def _check_business_date(context, business_date: str) -> None:
    violations = validation.business_date(business_date)
    if violations:
        await abort(context, INVALID, "the business date is malformed", errors_pb2.ERROR_REASON_INVALID_FIELD,
                    violations=violations)
