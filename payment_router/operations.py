"""PaymentOperationsService: the router's side for the operator: the day's payments
for the reconciliation, the outbox rows a peer refused, to list and replay, and the drop of an
archived day from the journal."""

import logging

import grpc
from google.protobuf import timestamp_pb2

from bank.common.v1 import errors_pb2, types_pb2
from bank.payments.v1 import payment_operations_service_pb2 as ops_api, payment_operations_service_pb2_grpc
from payment_router.journal import outbox_payment_id
from payment_router.router import Router
from paymesh.errors import Refused, abort, check_date
from paymesh.retention import keys_kept_from, not_final

FULL_NAME = ops_api.DESCRIPTOR.services_by_name["PaymentOperationsService"].full_name
PAGE = 1000  # payments per streamed message
log = logging.getLogger(__name__)


class PaymentOperationsService(payment_operations_service_pb2_grpc.PaymentOperationsServiceServicer):
    def __init__(self, router: Router):
        self.router = router
        self.journal = router.journal

    async def SummarizePayments(self, request, context):
        await check_date(context, request.business_date)
        rows = await self.journal.day_totals(request.business_date)
        return ops_api.SummarizePaymentsResponse(business_date=request.business_date, totals=[
            ops_api.PaymentTotal(channel=channel, loan_type=loan_type, status=status, count=count,
                                 amount=types_pb2.Money(currency_code=currency, amount_minor=amount))
            for channel, loan_type, status, currency, count, amount in rows
        ])

    async def ListPayments(self, request, context):
        await check_date(context, request.business_date)
        payments = await self.journal.day_payments(request.business_date)
        for start in range(0, len(payments), PAGE):
            yield ops_api.ListPaymentsResponse(payments=payments[start:start + PAGE])

    async def ListRefusedDeliveries(self, request, context):
        return ops_api.ListRefusedDeliveriesResponse(deliveries=[
            _refused(*row) for row in await self.journal.refused()])

    async def DropBusinessDay(self, request, context):
        day = await check_date(context, request.business_date)
        last_closed = self.router.booking.last_closed
        try:
            if last_closed is None or day > last_closed:
                raise not_final(f"{request.business_date} is not closed at the ledger: close it, reconcile and"
                                " archive it first (paymesh archive --drop)")
            dropped = await self.journal.drop_day(request.business_date, keys_kept_from(request.business_date))
        except Refused as refused:
            await refused.abort(context, business_date=request.business_date)
        log.info("business day dropped from the journal", extra={"business_date": request.business_date,
                 "payments": dropped.dropped_count, "keys_forgotten": dropped.forgotten_key_count})
        return ops_api.DropBusinessDayResponse(dropped=dropped)

    async def ReplayRefusedDeliveries(self, request, context):
        keys = [(d.topic, d.item_key) for d in request.deliveries]
        if not keys and not request.all:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                        "name the deliveries to replay, or set all to replay every refused one",
                        errors_pb2.ERROR_REASON_INVALID_FIELD, violations=[("deliveries", "empty without all")])
        count = await self.router.outbox.replay_refused(None if request.all else keys)
        return ops_api.ReplayRefusedDeliveriesResponse(replayed_count=count)


def _refused(topic: str, key: str, body: bytes, reason: errors_pb2.ErrorReason, message: str,
             refused_at: float) -> ops_api.RefusedDelivery:
    payment_id = outbox_payment_id(topic, key, body)
    when = timestamp_pb2.Timestamp()
    when.FromNanoseconds(int(refused_at * 1e9))
    return ops_api.RefusedDelivery(topic=topic, item_key=key, payment_id=payment_id, refuse_time=when,
                                   rejection=errors_pb2.Rejection(reason=reason, message=message))
