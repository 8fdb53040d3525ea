"""Both ends of the mesh's long-lived bidirectional streams.

The caller's end, BatchingStream: a pipe of items sent in micro-batches (a short linger
gathers what arrives together), each item's answer resolves its caller's future, and
after a broken stream everything unanswered is sent again on a new one. The servers
recognise a replay by the item's id, so a resend never applies anything twice.

The server's end, in_order: each message read is started at once (checked, submitted to
its commit) while earlier ones commit, and answered in the order it came.
"""

import asyncio
import collections
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import grpc

from paymesh.aio import wait_set

Item = TypeVar("Item")
Result = TypeVar("Result")
Request = TypeVar("Request")
Answer = TypeVar("Answer")
log = logging.getLogger(__name__)


class BatchingStream(Generic[Item, Result]):
    def __init__(
        self,
        name: str,
        open_call: Callable[[], grpc.aio.StreamStreamCall],
        to_request: Callable[[list[Item]], Any],
        results_of: Callable[[Any], list[tuple[str, Result]]],
        key_of: Callable[[Item], str],
        max_batch: int = 500,
        linger_seconds: float = 0.002,
        max_in_flight: int = 5000,
    ):
        self.name = name
        self._open_call = open_call
        self._to_request = to_request
        self._results_of = results_of
        self.key_of = key_of
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._max_in_flight = max_in_flight
        # Submitters waiting for room in the window, first come first served: a freed place wakes one
        # of them, not all (a day file keeps some 2,000 waiting; waking them all at every answer
        # was most of the router's CPU once a pacer narrowed the window).
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._granted = 0  # places given to waiters that have not taken them yet
        self._pending: dict[str, tuple[Item, asyncio.Future]] = {}  # insertion order = send order
        self._to_send: asyncio.Queue[str] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def set_window(self, max_in_flight: int) -> None:
        """How many items may be queued or on their way, unanswered, from now on (a pacer's knob)."""
        self._max_in_flight = max_in_flight
        self._wake_waiters()

    @property
    def pending_keys(self):
        """The keys of the items sent (or queued) and not yet answered."""
        return self._pending.keys()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream-{self.name}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, future in self._pending.values():
            future.cancel()

    async def wait_connected(self, timeout: float) -> bool:
        if self._connected.is_set():  # the hot path: no timer, no task
            return True
        return await wait_set(self._connected, timeout)

    async def submit(self, item: Item) -> Result:
        """The peer's answer for item; while the stream is down it waits (and is resent)."""
        return await (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[Item]) -> list[asyncio.Future]:
        """Queues items (once there is room in the window); a future per item resolves
        with the peer's answer. An item already on its way shares its answer; a caller
        giving up cancels only its own wait: the item stays pending and is still sent."""
        loop, futures = asyncio.get_running_loop(), []
        if self._waiters or len(self._pending) + self._granted >= self._max_in_flight:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # granted, then given up: pass the place on
                    self._granted -= 1
                    self._wake_waiters()
                raise
            self._granted -= 1
        for item in items:
            key = self.key_of(item)
            entry = self._pending.get(key)
            if entry is None:
                self._to_send.put_nowait(key)
                entry = self._pending[key] = (item, loop.create_future())
            elif entry[1].cancelled():
                entry = self._pending[key] = (entry[0], loop.create_future())
            futures.append(entry[1])
        return futures

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            call = self._open_call()
            reader = asyncio.create_task(self._read(call))
            writer = asyncio.create_task(self._write(call))
            try:
                await call.wait_for_connection()
                self._connected.set()
                log.info("stream connected", extra={"stream": self.name})
                backoff = 0.05
                done, _ = await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.cancelled():  # the call was cancelled under it: its channel was closed
                        raise ConnectionError(f"{self.name} stream cancelled with its channel")
                    task.result()
                raise ConnectionError(f"{self.name} stream ended")
            except asyncio.CancelledError:
                # close() cancels this task: it ends. A call cancelled under it (a ReloadingChannel
                # retiring the channel of an old certificate) raises it too: a broken stream, go on.
                this = asyncio.current_task()
                if this is None or this.cancelling():
                    raise
                log.info("stream cancelled with its channel; reconnecting", extra={"stream": self.name})
            # Whatever broke it (an RPC error, a write that found the call already finished because
            # the peer died between writes, ...), the pipe must live on: it reconnects and resends.
            except Exception as broken:
                # Loud once when a working stream breaks; quiet while the peer stays away.
                level = logging.WARNING if self.connected else logging.DEBUG
                log.log(level, "stream broken", extra={
                    "stream": self.name, "error": type(broken).__name__, "detail": str(broken)[:200]})
            finally:
                self._connected.clear()
                reader.cancel()
                writer.cancel()
                call.cancel()
                await asyncio.gather(reader, writer, return_exceptions=True)
            self._requeue_unanswered()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _requeue_unanswered(self) -> None:
        while not self._to_send.empty():
            self._to_send.get_nowait()
        for key in self._pending:
            self._to_send.put_nowait(key)

    async def _write(self, call) -> None:
        while True:
            keys = [await self._to_send.get()]
            if self._linger:
                await asyncio.sleep(self._linger)
            while len(keys) < self._max_batch and not self._to_send.empty():
                keys.append(self._to_send.get_nowait())
            items = [self._pending[k][0] for k in keys if k in self._pending]
            if items:
                await call.write(self._to_request(items))

    async def _read(self, call) -> None:
        async for response in call:
            for key, result in self._results_of(response):
                entry = self._pending.pop(key, None)
                if entry is not None and not entry[1].done():
                    entry[1].set_result(result)
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        room = self._max_in_flight - len(self._pending) - self._granted
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._granted += 1
                room -= 1


async def in_order(requests: AsyncIterable[Request], start: Callable[[Request], Awaitable[Answer]],
                   limit: int) -> AsyncIterator[list[Answer]]:
    """The answers to a request stream, in request order. start(request) is called as each request
    is read, so the next is read, checked and submitted while this one commits; what it returns is
    awaited in turn. Each item yielded is the next answer and those after it that are ready too (a
    caller may send them as one response: fewer, larger writes). At most limit requests are started
    and not yet yielded: beyond, reading waits (back-pressure on the caller). A failed answer raises
    here, after the answers before it; so does a broken request stream."""
    started: collections.deque[asyncio.Future | None] = collections.deque()  # None: the requests ended
    arrived, room = asyncio.Event(), asyncio.Semaphore(limit)

    def push(item: asyncio.Future | None) -> None:
        started.append(item)
        arrived.set()

    async def read() -> None:
        try:
            async for request in requests:
                await room.acquire()
                push(asyncio.ensure_future(start(request)))
        finally:
            push(None)

    def take() -> asyncio.Future:
        room.release()
        future = started.popleft()
        assert future is not None, "taken only after started[0] was seen not to be the end"
        return future

    reader = asyncio.get_running_loop().create_task(read())
    try:
        while True:
            while not started:
                arrived.clear()
                await arrived.wait()
            if started[0] is None:
                break
            ready = [await take()]
            while started and started[0] is not None and started[0].done():
                ready.append(take().result())
            yield ready
        await reader  # surfaces a broken request stream
    finally:
        reader.cancel()
