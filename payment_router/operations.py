"""PaymentOperationsService: the router's read-only side for the operator (reconciliation)."""

import datetime as dt

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from bank.payments.v1 import payment_operations_service_pb2 as ops_api, payment_operations_service_pb2_grpc
from payment_router.journal import Journal
from paymesh.errors import abort

FULL_NAME = ops_api.DESCRIPTOR.services_by_name["PaymentOperationsService"].full_name


class PaymentOperationsService(payment_operations_service_pb2_grpc.PaymentOperationsServiceServicer):
    def __init__(self, journal: Journal):
        self.journal = journal

    async def SummarizePayments(self, request, context):
        try:
            dt.date.fromisoformat(request.business_date)
        except ValueError:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "business_date must be a date as YYYY-MM-DD",
                        errors_pb2.ERROR_REASON_INVALID_FIELD, violations=[("business_date", "not YYYY-MM-DD")])
        rows = await self.journal.day_totals(request.business_date)
        return ops_api.SummarizePaymentsResponse(business_date=request.business_date, totals=[
            ops_api.PaymentTotal(channel=channel, loan_type=loan_type, status=status, count=count,
                                 amount=types_pb2.Money(currency_code=currency, amount_minor=amount))
            for channel, loan_type, status, currency, count, amount in rows
        ])
