"""Group commit: micro-batches from every open stream are queued here and applied
together, in arrival order, in one SQLite transaction; each batch's answer is released
only after COMMIT. One fsync is shared by many payments, so a core stays fast and keeps
the rule "durable before acknowledged"."""

import asyncio
import logging
from collections.abc import Callable

from paymesh.sqlite import Store

log = logging.getLogger(__name__)
MAX_PAYMENTS_PER_COMMIT = 2000


class GroupCommitter:
    def __init__(self, store: Store, apply_batch: Callable, on_rollback: Callable[[], None]):
        self._store = store
        self._apply_batch = apply_batch  # (connection, payments) -> outcomes, inside the transaction
        self._on_rollback = on_rollback  # forget whatever the failed transaction cached
        self._queue: asyncio.Queue[tuple[list, asyncio.Future]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def submit(self, payments: list) -> list:
        """The outcomes of payments, once they are committed."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((payments, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            count = len(group[0][0])
            while not self._queue.empty() and count < MAX_PAYMENTS_PER_COMMIT:
                group.append(self._queue.get_nowait())
                count += len(group[-1][0])
            try:
                results = await self._store.transaction(_apply_group, self._apply_batch, [p for p, _ in group])
            except Exception as error:  # the whole transaction rolled back: nothing was applied
                log.exception("group commit failed", extra={"batches": len(group)})
                self._on_rollback()
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), outcomes in zip(group, results):
                if not future.done():
                    future.set_result(outcomes)


def _apply_group(connection, apply_batch, batches):
    return [apply_batch(connection, payments) for payments in batches]
