"""Day files paced by online latency, so a file never makes a person wait.

Each core's day-file payments travel on their own stream (its lane), and at most `window` of them
are on their way to each core at once. Every INTERVAL the pacer looks at the online calls' whole
times in the router since the last look (a file's work holds the router's loop and its journal's
one SQLite thread too, not only the core): above ONLINE_TARGET_SECONDS (at the 90th percentile)
the window falls to a quarter, at or under it grows by an eighth (and MIN_WINDOW), and with no
online payment at all it doubles: a file goes at full speed when nobody waits, and online
traffic takes back the core within one or two intervals. MIN_WINDOW keeps a file moving however
busy the day: it always ends.
"""

import asyncio

from paymesh.streams import BatchingStream

ONLINE_TARGET_SECONDS = 0.040  # online alone at 200/s: p50 18 ms, p99 50 ms on this 2-core machine
# MIN_WINDOW: 8 a core keeps a 10,000-line file moving at some 600 lines/s beside online traffic on two
# cores (25 gave 1,000 lines/s but an online p99 twice as long); MAX_WINDOW: what an upload keeps in flight.
MIN_WINDOW, MAX_WINDOW = 8, 2000
INTERVAL = 0.2


class BatchPacer:
    def __init__(self, streams: list[BatchingStream]):
        """streams: the day-file stream to each core."""
        self._streams = streams
        self._online: list[float] = []
        self.window = MAX_WINDOW
        self._set_windows()

    def observe_online(self, seconds: float) -> None:
        """An online call's time in the router, from its arrival to its answer."""
        self._online.append(seconds)

    def adjust(self) -> int:
        """The new window from what online payments saw since the last call."""
        seen, self._online = sorted(self._online), []
        if not seen:
            self.window = min(MAX_WINDOW, self.window * 2)
        elif seen[int(len(seen) * 0.9)] > ONLINE_TARGET_SECONDS:
            self.window = max(MIN_WINDOW, self.window // 4)
        else:
            self.window = min(MAX_WINDOW, self.window + self.window // 8 + MIN_WINDOW)
        self._set_windows()
        return self.window

    def _set_windows(self) -> None:
        for stream in self._streams:
            stream.set_window(self.window)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            self.adjust()
