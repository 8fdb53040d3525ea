"""What a channel does against a running mesh (real processes, real mTLS): orders on the
seeded portfolio, online payments, refusals, day files, its confirmations."""

import asyncio
from datetime import date
from typing import TypedDict

import grpc
import pytest
from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.payments.v1 import payment_service_pb2 as api
from bank.payments.v1 import payment_service_pb2_grpc as api_grpc
from bank.payments.v1 import payments_pb2

from loan_core.portfolio import generate
from paymesh import tls
from paymesh.topology import Identity
from paymesh_tools.dev_tokens import mint
from paymesh_tools.products import RULES_OF_TYPE

AS_OF = "2026-11-27"


class Portfolio(TypedDict):
    """The arguments of loan_core.portfolio.generate after the rules: which seeded portfolio."""

    seed: int
    count: int
    as_of: date


PORTFOLIO = Portfolio(seed=7, count=120, as_of=date.fromisoformat(AS_OF))
ENV = dict(PAYMESH_PORTFOLIO_SIZE="120", PAYMESH_PORTFOLIO_SEED="7", PAYMESH_PORTFOLIO_AS_OF=AS_OF,
           PAYMESH_CLOCK_START=f"{AS_OF}T10:00:00-05:00")


def open_loans(loan_type: int, currency: str = "PEN") -> list[str]:
    return [t.loan_id for t in generate(RULES_OF_TYPE[loan_type], **PORTFOLIO)
            if t.currency_code == currency and t.installments_paid < t.term_months]


def order(key: str, loan_id: str, amount: int = 1500, currency: str = "PEN") -> payments_pb2.PaymentOrder:
    return payments_pb2.PaymentOrder(idempotency_key=key, loan_id=loan_id,
                                     amount=types_pb2.Money(currency_code=currency, amount_minor=amount))


def token_metadata(pki_dir, channel: str, **claims):
    if channel not in ("app", "internet-banking"):
        return None
    return (("authorization", "Bearer " + mint(pki_dir, "CUST-0001", channel, **claims)),)


async def submit(mesh, pki_dir, channel: str, payment_order, metadata="token"):
    if metadata == "token":
        metadata = token_metadata(pki_dir, channel)
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", channel)) as ch:
        reply = await api_grpc.PaymentServiceStub(ch).SubmitPayment(
            api.SubmitPaymentRequest(payment=payment_order), metadata=metadata, timeout=10)
    return reply.payment


async def refused(mesh, pki_dir, channel, payment_order, metadata="token") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await submit(mesh, pki_dir, channel, payment_order, metadata)
    return error.value


async def confirmations_of(mesh, pki_dir, channel: str, wanted: set[str], timeout: float = 10) -> set[str]:
    """Payment ids confirmed to channel, reading its stream from the beginning until wanted are in."""
    seen: set[str] = set()
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", channel)) as ch:
        call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
            conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
        try:
            async with asyncio.timeout(timeout):
                async for event in call:
                    seen |= {c.payment_id for c in event.batch.confirmations}
                    if wanted <= seen:
                        break
        except TimeoutError:
            pass
        call.cancel()
    return seen


async def upload(mesh, pki_dir, channel: str, batch_id: str, orders, trailer_count=None):
    from paymesh_tools.simulate_day import batch_requests

    requests = batch_requests(batch_id, AS_OF, orders)
    if trailer_count is not None:
        requests[-1].trailer.line_count = trailer_count
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, Identity("channel", channel)) as ch:
        return await api_grpc.PaymentServiceStub(ch).UploadBatch(iter(requests), timeout=120)
