"""One channel's StreamPayments call.

Orders are read as they come, each within the stream's window of payments in flight and the
channel's rate, and answered as each becomes final: not in the order sent, so a slow core never
holds back the answers of another's (each answer names its payment). Orders sent together in
`payments` are answered together, up to ANSWERS_PER_MESSAGE a response.
"""

import asyncio
import collections
from collections.abc import AsyncIterable, AsyncIterator

from bank.common.v1 import errors_pb2
from bank.payments.v1 import payment_service_pb2 as api, payments_pb2
from paymesh.errors import Refused

STREAM_WINDOW = 2000  # payments in flight per channel stream
ANSWERS_PER_MESSAGE = 500  # results gathered into one response for orders sent in `payments`


class PaymentStream:
    def __init__(self, service, caller):
        """service: the PaymentService (pay_many, rejected); caller: who is streaming."""
        self.service = service
        self.caller = caller
        self.failed: list[Exception] = []  # what kept orders from being answered (the journal, say)
        self.idle = False  # ended for sending nothing for the channel's stream_idle_seconds
        self._ready: collections.deque[tuple[payments_pb2.Payment, bool] | None] = collections.deque()
        self._more = asyncio.Event()
        self._window = asyncio.Semaphore(STREAM_WINDOW)
        self._answering: set[asyncio.Task] = set()

    async def responses(self, requests: AsyncIterable[api.StreamPaymentsRequest]
                        ) -> AsyncIterator[api.StreamPaymentsResponse]:
        """Every answer, until the requests end and each admitted order is answered (or failed)."""
        reader = asyncio.create_task(self._read(requests))
        try:
            while (item := await self._next()) is not None:
                payment, many = item
                if not many:
                    yield api.StreamPaymentsResponse(payment=payment)
                    continue
                results = [payment]
                while (self._ready and (head := self._ready[0]) is not None and head[1]
                       and len(results) < ANSWERS_PER_MESSAGE):
                    self._ready.popleft()
                    results.append(head[0])
                yield api.StreamPaymentsResponse(payments=results)
            await reader  # surfaces a broken request stream
        finally:
            reader.cancel()

    def _put(self, item: tuple[payments_pb2.Payment, bool] | None) -> None:
        self._ready.append(item)
        self._more.set()

    async def _next(self) -> tuple[payments_pb2.Payment, bool] | None:
        while not self._ready:
            self._more.clear()
            await self._more.wait()
        return self._ready.popleft()

    async def _read(self, requests: AsyncIterable[api.StreamPaymentsRequest]) -> None:
        try:
            async for request in self._until_idle(requests):
                many = len(request.payments) > 0
                admitted = await self._admit(request.payments if many else (request.payment,), many)
                if admitted:
                    task = asyncio.create_task(self._answer(admitted, many))
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)
            await asyncio.gather(*self._answering)
        finally:
            self._put(None)  # the answers end even if reading failed

    async def _until_idle(self, requests: AsyncIterable[api.StreamPaymentsRequest]
                          ) -> AsyncIterator[api.StreamPaymentsRequest]:
        """The requests, until they end or none came for the channel's idle time with nothing in flight
        (then idle is set): an idle stream holds the router's memory for nothing. A stream waiting
        for its answers is not idle."""
        limit = self.caller.policy.stream_idle_seconds
        iterator = aiter(requests)
        next_request = asyncio.ensure_future(anext(iterator))
        try:
            while True:
                done, _ = await asyncio.wait({next_request}, timeout=limit)
                if not done:
                    if self._answering:
                        continue
                    self.idle = True
                    return
                try:
                    request = next_request.result()
                except StopAsyncIteration:
                    return
                yield request
                next_request = asyncio.ensure_future(anext(iterator))
        finally:
            next_request.cancel()

    async def _admit(self, orders, many: bool) -> list[payments_pb2.PaymentOrder]:
        """The orders within the window and the channel's rate; each other is answered REJECTED at once."""
        admitted = []
        for order in orders:
            await self._window.acquire()
            if self.caller.policy.bucket.take():
                self._window.release()
                self._put((self.service.rejected(self.caller, order, Refused(
                    errors_pb2.ERROR_REASON_RATE_LIMITED, "over the channel's rate limit; slow down")), many))
            else:
                admitted.append(order)
        return admitted

    async def _answer(self, orders: list[payments_pb2.PaymentOrder], many: bool) -> None:
        try:
            answers = await self.service.pay_many(self.caller, [(o, o.idempotency_key) for o in orders])
            await self.service.with_confirmation_sequences([payment for payment, _ in answers])
            for payment, _ in answers:
                self._put((payment, many))
        except Exception as error:
            self.failed.append(error)
        finally:
            for _ in orders:
                self._window.release()
