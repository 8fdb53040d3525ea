"""One subscription's stream: catch up from the log, then follow live, and back to
the log whenever the live buffer overflowed.

`position` is the last sequence this stream has sent; nothing at or below it is
sent again, and nothing above it that matches is skipped, because the buffer is
registered before the first read of the log (what the read misses, the buffer has).
"""

from collections.abc import AsyncIterator, Callable

from bank.confirmations.v1 import confirmation_service_pb2 as service_pb2
from confirmations import log
from confirmations.fanout import FanOut, LiveBuffer
from paymesh.aio import wait_set
from paymesh.lease import FencedStore
from paymesh.sqlite import Store

CATCH_UP_PAGE = 1000
LIVE_BATCH = 500


def _batch_from_log(bodies: list[bytes]) -> service_pb2.SubscribeResponse:
    response = service_pb2.SubscribeResponse()
    confirmations = response.batch.confirmations
    for body in bodies:
        confirmations.add().MergeFromString(body)
    return response


async def follow(
    store: Store | FencedStore, fanout: FanOut, buffer: LiveBuffer, position: int, heartbeat_seconds: float,
    head: Callable[[], int],
) -> AsyncIterator[service_pb2.SubscribeResponse]:
    fanout.add(buffer)
    try:
        while not buffer.ended:
            buffer.overflowed = False  # from here on the buffer holds what the log read below may miss
            while True:
                bodies, last = await store.run(
                    log.read_after, buffer.channel, position, sorted(buffer.loan_types), sorted(buffer.statuses),
                    CATCH_UP_PAGE,
                )
                if bodies:
                    yield _batch_from_log(bodies)
                    position = last
                if len(bodies) < CATCH_UP_PAGE:
                    break
            while not buffer.overflowed and not buffer.ended:
                items = [c for c in buffer.take(LIVE_BATCH) if c.sequence > position]
                if items:
                    response = service_pb2.SubscribeResponse()
                    response.batch.confirmations.extend(items)
                    yield response
                    position = items[-1].sequence
                    continue
                if buffer.items:
                    continue
                buffer.ready.clear()
                if not await wait_set(buffer.ready, heartbeat_seconds):
                    yield service_pb2.SubscribeResponse(heartbeat=service_pb2.Heartbeat(head_sequence=head()))
    finally:
        fanout.remove(buffer)
