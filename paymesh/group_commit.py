"""Group commit: work submitted from every open stream while a commit runs waits for the next
one, and all of it shares one SQLite transaction (one fsync). Each submission is answered only
after COMMIT, so a service stays fast and keeps the rule "durable before acknowledged".

Submissions are applied in arrival order by one task, so what a commit makes (a sequence, a
loan's new state) follows the order the callers sent it in, within a lane. Lanes are priority
classes (0 first: online, where a person waits; then a switch's stream; then a day file): the
next commit takes the waiting submissions of lane 0 first, then lane 1, ..., up to max_weight,
so an online payment waits at most for the commit already running, never behind a file's.
"""

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from bank.common.v1 import types_pb2

log = logging.getLogger(__name__)
# A submission's lane by its priority (bank.common.v1.Priority): online (or unsaid) first, then a
# switch's stream, then a day file. Every service that commits by priority uses these.
PRIORITY_LANES = 3
# The most a commit that carries lane 0's work (a person waits for it) takes of each later lane: an
# online payment's commit is never also the one that writes a day file's hundreds of rows. On the
# priority bench (bench_mesh.py --priority-only, online 200/s beside a 10,000-line file) the online
# p99 was 834-1,584 ms without it, 598-767 ms with it; the file's rate the same (docs/payment-router.md).
BESIDE_FIRST_LANE_MAX_WEIGHT = 16


def lane_of(priority: types_pb2.Priority) -> int:
    return {types_pb2.PRIORITY_STREAM: 1, types_pb2.PRIORITY_BATCH: 2}.get(priority, 0)


Item = TypeVar("Item")
Result = TypeVar("Result")


class TransactionalStore(Protocol):
    """A store the group commit runs its transactions in: paymesh.sqlite.Store, paymesh.postgres.PostgresStore."""

    async def transaction(self, fn: Callable[..., Any], *args: Any) -> Any:
        ...


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        store: TransactionalStore,
        apply: Callable[[Any, list[Item]], Sequence[Result] | None],  # (the store's connection)
        *,
        name: str,
        max_weight: int | None = None,
        weight: Callable[[Item], int] = lambda item: 1,
        on_commit: Callable[[list[Result]], None] | None = None,
        on_rollback: Callable[[], None] | None = None,
        lanes: int = 1,
        lane_max_weight: Sequence[int | None] = (),
    ):
        """apply(connection, items) -> one result per item (or None: nothing to answer but the commit),
        inside the transaction.
        max_weight bounds one commit (by weight(item), 1 each by default; a single heavier item
        still goes alone). on_commit(results) runs after COMMIT, before any submitter hears;
        on_rollback() after a failed transaction (to forget what it cached). lanes: how many
        priority classes submit() takes (lane 0 first); lane_max_weight: the most a commit takes
        of each lane (None or absent: up to max_weight), so that a commit of day-file work is short
        and an online submission arriving meanwhile waits little."""
        self._store = store
        self._apply = apply
        self._name = name
        self._max_weight = max_weight
        self._weight = weight
        self._on_commit = on_commit
        self._on_rollback = on_rollback
        self._lanes: list[collections.deque[tuple[Item, asyncio.Future]]] = [collections.deque() for _ in range(lanes)]
        self._lane_max_weight = [*lane_max_weight, *[None] * lanes][:lanes]
        self._waiting = asyncio.Event()  # set while some lane holds a submission
        self._idle = asyncio.Event()  # set while nothing is waiting or committing
        self._idle.set()
        self._task: asyncio.Task | None = None

    def submit(self, item: Item, lane: int = 0) -> "asyncio.Future[Result]":
        """A future of the item's result, resolved once it is committed (or failed with the commit)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        future = asyncio.get_running_loop().create_future()
        self._lanes[min(lane, len(self._lanes) - 1)].append((item, future))
        self._waiting.set()
        self._idle.clear()
        return future

    async def close(self) -> None:
        """Commits what was submitted, then stops."""
        if self._task is not None:
            await self._idle.wait()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _next_group(self) -> list[tuple[Item, asyncio.Future]]:
        """The next commit's submissions: the highest lanes' first, in their order, up to max_weight; beside
        lane 0's, at most BESIDE_FIRST_LANE_MAX_WEIGHT of each later lane."""
        group: list[tuple[Item, asyncio.Future]] = []
        weight = 0
        beside_first = False  # the commit carries lane 0's work
        for index, (lane, most) in enumerate(zip(self._lanes, self._lane_max_weight)):
            if index == 1:
                beside_first = bool(group)
            if beside_first:
                most = BESIDE_FIRST_LANE_MAX_WEIGHT if most is None else min(most, BESIDE_FIRST_LANE_MAX_WEIGHT)
            of_lane = 0
            while lane and (not group or self._max_weight is None or weight < self._max_weight) \
                    and (most is None or of_lane < most):
                group.append(lane.popleft())
                item_weight = self._weight(group[-1][0])
                weight, of_lane = weight + item_weight, of_lane + item_weight
        return group

    async def _run(self) -> None:
        while True:
            await self._waiting.wait()
            group = self._next_group()
            if not any(self._lanes):
                self._waiting.clear()
            if not group:
                continue
            try:
                await self._commit(group)
            finally:
                if not any(self._lanes):
                    self._idle.set()

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
