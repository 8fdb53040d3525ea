"""Group commit: publish messages waiting at the same moment share one SQLite
transaction (one fsync), so durability costs little per confirmation.

Each message is still all-or-nothing, and acknowledged only after its commit.
One committer task orders every commit, so sequences reach the fan-out in order.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from bank.confirmations.v1.confirmations_pb2 import Confirmation
from confirmations import log
from paymesh.sqlite import Store

logger = logging.getLogger(__name__)
MAX_MESSAGES_PER_COMMIT = 512


class GroupCommitter:
    def __init__(self, store: Store, on_commit: Callable[[list[Confirmation], int], None]):
        """on_commit(the new confirmations, how many webhook deliveries they made) follows each commit."""
        self._store = store
        self._on_commit = on_commit
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="confirmations-committer")

    def submit(self, batch: Sequence[Confirmation]) -> asyncio.Future:
        """A future of [(sequence, duplicate)] for the batch, resolved once it is durable."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((batch, future))
        return future

    async def _run(self) -> None:
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty() and len(waiting) < MAX_MESSAGES_PER_COMMIT:
                waiting.append(self._queue.get_nowait())
            try:
                results, new, deliveries = await self._store.transaction(
                    log.append, [batch for batch, _ in waiting])
            except Exception as error:  # the disk, not the input: validation happened before
                logger.exception("commit failed", extra={"messages": len(waiting)})
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._on_commit(new, deliveries)
            for (_, future), acks in zip(waiting, results):
                if not future.done():
                    future.set_result(acks)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.cancel()
