"""paymesh.streams.BatchingStream's window: submitters beyond it wait in their order, and each
place freed lets exactly one of them in (a day file keeps some 2,000 waiting: waking them all at
every answer was most of the router's CPU once a pacer narrowed the window)."""

import asyncio

from paymesh.streams import BatchingStream


def unstarted() -> BatchingStream:
    """Never connected: the window is what is tested; answers are given by hand."""
    return BatchingStream("test", open_call=lambda: None, to_request=list,  # type: ignore[arg-type, return-value]
                          results_of=lambda response: [], key_of=str, max_in_flight=2)


def answer(stream: BatchingStream, key: str) -> None:
    """What the reader does when the peer answers key."""
    stream._pending.pop(key)[1].set_result(f"ok {key}")
    stream._wake_waiters()


async def test_beyond_the_window_submitters_wait_in_order_and_one_is_let_in_per_answer():
    stream = unstarted()
    await stream.submit_many(["a", "b"])
    waiting = [asyncio.create_task(stream.submit_many([key])) for key in "cdef"]
    await asyncio.sleep(0)
    assert list(stream.pending_keys) == ["a", "b"] and len(stream._waiters) == 4
    answer(stream, "a")
    await asyncio.sleep(0)
    assert list(stream.pending_keys) == ["b", "c"], "the first waiter, and only it"
    assert [t.done() for t in waiting] == [True, False, False, False]
    waiting[1].cancel()  # d gives up: its place goes to e
    await asyncio.sleep(0)
    answer(stream, "b")
    await asyncio.sleep(0)
    assert list(stream.pending_keys) == ["c", "e"]
    stream.set_window(4)  # a pacer widens it: f comes in at once
    await asyncio.sleep(0)
    assert list(stream.pending_keys) == ["c", "e", "f"] and not stream._waiters
