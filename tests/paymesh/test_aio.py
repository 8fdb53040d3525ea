"""paymesh.aio.wait_set against the Python 3.11 race of asyncio.wait_for (python/cpython#86296)."""

import asyncio

import pytest

from paymesh.aio import wait_set


async def _waits_forever(event: asyncio.Event) -> None:
    """A service's loop: wakes on the event or a timeout, ends only when its task is cancelled."""
    while True:
        event.clear()
        await wait_set(event, 1.0)


@pytest.mark.parametrize("ticks", range(4))
async def test_a_cancellation_that_arrives_as_the_event_is_set_ends_the_loop(ticks):
    """The event set, then the task cancelled `ticks` loop iterations later. With asyncio.wait_for on
    Python 3.11 the task lived on at ticks 0 to 2 (the cancellation returned the event's result)."""
    event = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_waits_forever(event))
    await asyncio.sleep(0.01)  # waiting now
    event.set()
    for _ in range(ticks):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done and task.cancelled(), "the cancellation was swallowed: the loop still runs"


async def test_it_says_whether_the_event_was_set_or_the_time_ran_out():
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wait_set(event, 0.05) is False
    assert loop.time() - started >= 0.05
    loop.call_later(0.01, event.set)
    assert await wait_set(event, 5.0) is True
    assert await wait_set(event, 0.0) is True  # already set
