"""Group commit: work submitted from every open stream while a commit runs waits for the next
one, and all of it shares one SQLite transaction (one fsync). Each submission is answered only
after COMMIT, so a service stays fast and keeps the rule "durable before acknowledged".

Submissions are applied in arrival order by one task, so what a commit makes (a sequence, a
loan's new state) follows the order the callers sent it in.
"""

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from paymesh.sqlite import Store

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        store: Store,
        apply: Callable[[sqlite3.Connection, list[Item]], Sequence[Result] | None],
        *,
        name: str,
        max_weight: int | None = None,
        weight: Callable[[Item], int] = lambda item: 1,
        on_commit: Callable[[list[Result]], None] | None = None,
        on_rollback: Callable[[], None] | None = None,
    ):
        """apply(connection, items) -> one result per item (or None: nothing to answer but the commit),
        inside the transaction.
        max_weight bounds one commit (by weight(item), 1 each by default; a single heavier item
        still goes alone). on_commit(results) runs after COMMIT, before any submitter hears;
        on_rollback() after a failed transaction (to forget what it cached)."""
        self._store = store
        self._apply = apply
        self._name = name
        self._max_weight = max_weight
        self._weight = weight
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def submit(self, item: Item) -> "asyncio.Future[Result]":
        """A future of the item's result, resolved once it is committed (or failed with the commit)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return future

    async def close(self) -> None:
        """Commits what was submitted, then stops."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _next_group(self, first: tuple[Item, asyncio.Future]) -> list[tuple[Item, asyncio.Future]]:
        group, weight = [first], self._weight(first[0])
        while not self._queue.empty() and (self._max_weight is None or weight < self._max_weight):
            group.append(self._queue.get_nowait())
            weight += self._weight(group[-1][0])
        return group

    async def _run(self) -> None:
        while True:
            group = self._next_group(await self._queue.get())
            try:
                await self._commit(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _commit(self, group: list[tuple[Item, asyncio.Future]]) -> None:
        try:
            results = await self._store.transaction(self._apply, [item for item, _ in group])
        except Exception as error:  # the whole transaction rolled back: nothing of it was written
            log.exception("group commit failed", extra={"commit": self._name, "submissions": len(group)})
            if self._on_rollback is not None:
                self._on_rollback()
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        # apply answers None only where Result is None (nothing to answer but the commit): each future gets None.
        results = [cast(Result, None)] * len(group) if results is None else list(results)
        if self._on_commit is not None:
            self._on_commit(results)
        for (_, future), result in zip(group, results):
            if not future.done():
                future.set_result(result)
