"""asyncio helpers the services share."""

import asyncio


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Waits until event is set or timeout seconds pass; True if it was set.

    Not asyncio.wait_for(event.wait(), timeout): on Python 3.11 that swallows a cancellation that
    arrives in the loop iteration where the event is set (it returns the inner result instead;
    python/cpython#86296, fixed by 3.12's rewrite), so a loop stopped by cancelling its task runs on
    forever. A webhook lane did, and its service's stop waited for it for good. asyncio.timeout lets
    every cancellation through."""
    if event.is_set():  # the hot path: no timer
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False
