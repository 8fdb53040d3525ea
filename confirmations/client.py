"""Client helpers for the confirmation stream: building confirmations, publishing
them as the router does, and reading a subscription. Used by tests and bench/."""

import asyncio
from collections.abc import AsyncIterator, Sequence

from google.protobuf import timestamp_pb2

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb, confirmation_service_pb2_grpc
from bank.confirmations.v1.confirmations_pb2 import Confirmation

LOAN_TYPES = (types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_MORTGAGE, types_pb2.LOAN_TYPE_VEHICLE)


def confirmation(payment_id: str, channel: types_pb2.Channel, amount_minor: int = 1000, *,
                 status: types_pb2.PaymentStatus = types_pb2.PAYMENT_STATUS_APPLIED,
                 loan_type: types_pb2.LoanType = types_pb2.LOAN_TYPE_CASH,
                 currency: str = "PEN", business_date: str = "2025-03-31") -> Confirmation:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return Confirmation(
        payment_id=payment_id, channel=channel, idempotency_key=f"key-{payment_id}", loan_id=f"loan-{payment_id}",
        loan_type=loan_type, status=status, amount=types_pb2.Money(currency_code=currency, amount_minor=amount_minor),
        business_date=business_date, result_time=now,
    )


def stub(channel) -> confirmation_service_pb2_grpc.ConfirmationServiceStub:
    return confirmation_service_pb2_grpc.ConfirmationServiceStub(channel)


async def publish(service, items: Sequence[Confirmation], per_message: int = 100,
                  traceparents: Sequence[str] = ()) -> list[pb.PublishAck]:
    """Publishes items (each with its traceparent, if given) on one stream, per_message to a request;
    returns the acks in order."""
    requests = [pb.PublishConfirmationsRequest(confirmations=items[i:i + per_message],
                                               traceparents=traceparents[i:i + per_message])
                for i in range(0, len(items), per_message)]
    call = service.PublishConfirmations(iter(requests))
    return [ack async for response in call for ack in response.acks]


async def confirmations_of(call) -> AsyncIterator[Confirmation]:
    """The confirmations of a Subscribe call, batches flattened, heartbeats skipped."""
    async for response in call:
        for item in response.batch.confirmations:
            yield item


async def collect(call, count: int, timeout: float = 30.0) -> list[Confirmation]:
    """The first count confirmations of a subscription (raises TimeoutError if they do not come)."""
    async def take() -> list[Confirmation]:
        taken = []
        async for item in confirmations_of(call):
            taken.append(item)
            if len(taken) == count:
                break
        return taken

    async with asyncio.timeout(timeout):
        return await take()
