"""A small client of a loan core, for tests, the benchmark and operators' scripts."""

import asyncio

from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2


def payment(payment_id: str, loan_id: str, amount_minor: int, currency: str, business_date: str,
            channel: types_pb2.Channel = types_pb2.CHANNEL_AGENT,
            mode: types_pb2.PrepaymentMode = types_pb2.PREPAYMENT_MODE_UNSPECIFIED, value_date: str = "",
            ) -> core_pb2.LoanPayment:
    return core_pb2.LoanPayment(
        payment_id=payment_id, loan_id=loan_id, business_date=business_date, channel=channel, prepayment_mode=mode,
        value_date=value_date,
        amount=types_pb2.Money(currency_code=currency, amount_minor=amount_minor),
    )


async def apply_batches(stub, batches: list[list[core_pb2.LoanPayment]]) -> list[core_pb2.PaymentOutcome]:
    """Sends every batch on one ApplyPayments stream; returns the outcomes in order."""
    call = stub.ApplyPayments()
    outcomes = []
    try:
        for batch in batches:
            await call.write(core_pb2.ApplyPaymentsRequest(payments=batch))
        await call.done_writing()
    except asyncio.InvalidStateError:
        pass  # the core ended the call before all was written (a refusal): reading it raises its status
    async for response in call:
        outcomes.extend(response.outcomes)
    return outcomes
