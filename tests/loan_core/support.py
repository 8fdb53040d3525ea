"""What the loan cores' fault tests share: a stream of payments with a fault struck in the middle."""

import time
from collections.abc import Awaitable, Callable

import grpc

from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core.local import core_stub

# How a stream broken by its core's SIGKILL ends, as the client sees it.
BROKEN_BY_A_KILL = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)


def sigkill(service) -> None:
    """SIGKILL a service process (tests.harness.ServiceProcess) and reap it: no grace, whatever was in flight is cut."""
    service.process.kill()
    service.process.wait()


async def stream_with_fault(address: str, settings, batches: list[list[core_pb2.LoanPayment]], after: int,
                            fault: Callable[[], Awaitable[None] | None],
                            ends_as: tuple[grpc.StatusCode, ...] = BROKEN_BY_A_KILL
                            ) -> tuple[list[core_pb2.PaymentOutcome], float]:
    """Every batch on one ApplyPayments stream at once; fault() once `after` outcomes are answered (a
    kill, a pause, a failover), with the other messages in flight. (The outcomes answered, when
    (monotonic) the fault was struck.) A stream the fault ends must end with one of ends_as."""
    acknowledged: list[core_pb2.PaymentOutcome] = []
    struck_at = 0.0
    async with core_stub(address, settings) as stub:
        call = stub.ApplyPayments()
        for batch in batches:
            await call.write(core_pb2.ApplyPaymentsRequest(payments=batch))
        try:
            async for response in call:
                acknowledged.extend(response.outcomes)
                if not struck_at and len(acknowledged) >= after:
                    struck_at = time.monotonic()
                    done = fault()
                    if done is not None:
                        await done
        except grpc.aio.AioRpcError as broken:
            assert broken.code() in ends_as, broken
    assert struck_at, "the stream ended before the fault"
    return acknowledged, struck_at
