"""Live delivery: each committed confirmation goes to the in-memory buffer of every
subscriber of its channel whose filter matches.

Buffers are bounded. A subscriber that falls behind is marked overflowed and its
buffer dropped; it then catches up from the log. Publishing never waits on a
subscriber, so a slow one slows neither the publisher nor the others.
"""

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable

from bank.confirmations.v1.confirmations_pb2 import Confirmation


class LiveBuffer:
    def __init__(self, channel: int, loan_types: Iterable[int], statuses: Iterable[int], capacity: int):
        self.channel = channel
        self.loan_types = frozenset(loan_types)
        self.statuses = frozenset(statuses)
        self.capacity = capacity
        self.items: deque[Confirmation] = deque()
        self.overflowed = False
        self.ended = False  # the process lost its lease: no more confirmations come here
        self.ready = asyncio.Event()

    def matches(self, confirmation: Confirmation) -> bool:
        return (not self.loan_types or confirmation.loan_type in self.loan_types) and (
            not self.statuses or confirmation.status in self.statuses
        )

    def offer(self, confirmation: Confirmation) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.capacity:
            self.overflowed = True
            self.items.clear()
        else:
            self.items.append(confirmation)
        self.ready.set()

    def take(self, limit: int) -> list[Confirmation]:
        taken: list[Confirmation] = []
        while self.items and len(taken) < limit:
            taken.append(self.items.popleft())
        return taken


class FanOut:
    def __init__(self):
        self._by_channel: dict[int, set[LiveBuffer]] = defaultdict(set)
        self.overflows = 0  # how often a subscriber fell behind and went back to the log

    def add(self, buffer: LiveBuffer) -> None:
        self._by_channel[buffer.channel].add(buffer)

    def remove(self, buffer: LiveBuffer) -> None:
        self._by_channel[buffer.channel].discard(buffer)

    def end_all(self) -> None:
        """Every subscription ends (its stream returns): this process stopped being the one that appends."""
        for buffers in self._by_channel.values():
            for buffer in buffers:
                buffer.ended = True
                buffer.ready.set()

    def publish(self, confirmations: Iterable[Confirmation]) -> None:
        """Called in sequence order, right after the commit that made them durable."""
        for confirmation in confirmations:
            for buffer in self._by_channel.get(confirmation.channel, ()):
                if buffer.matches(confirmation) and not buffer.overflowed:
                    buffer.offer(confirmation)
                    self.overflows += buffer.overflowed
