"""paymesh.group_commit over a real SQLite file: one transaction for what waits, answered only
after COMMIT, bounded by max_weight, and lanes: an online submission never waits behind a day
file's, only for the commit already running."""

import asyncio
import sqlite3
import threading

import pytest

from paymesh.group_commit import BESIDE_FIRST_LANE_MAX_WEIGHT, GroupCommit
from paymesh.sqlite import Store

ONLINE, STREAM, BATCH = 0, 1, 2


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "commits.db")
    yield store
    store.close()


class Recorder:
    """apply(): records each commit's items in a table and in `commits`. The first commit holds
    (in the store's thread, as a slow fsync would) until release(), so what is submitted meanwhile waits."""

    def __init__(self):
        self.commits: list[list[str]] = []
        self._started, self._release = threading.Event(), threading.Event()

    def __call__(self, connection: sqlite3.Connection, items: list[str]) -> list[str]:
        connection.execute("CREATE TABLE IF NOT EXISTS done (item TEXT)")
        connection.executemany("INSERT INTO done VALUES (?)", [(item,) for item in items])
        self.commits.append(list(items))
        self._started.set()
        self._release.wait(10)
        return [f"ok {item}" for item in items]

    async def first_commit_running(self) -> None:
        await asyncio.to_thread(self._started.wait, 10)

    def release(self) -> None:
        self._release.set()


async def test_what_waits_while_a_commit_runs_shares_the_next_and_online_goes_first(store):
    apply = Recorder()
    group = GroupCommit(store, apply, name="test", lanes=3)
    first = group.submit("file-0", BATCH)  # starts a commit alone
    await apply.first_commit_running()
    # While it commits: a day file's lines, a stream's, then one online payment, in that order.
    later = [group.submit(f"file-{n}", BATCH) for n in range(1, 4)]
    later += [group.submit("stream-1", STREAM), group.submit("online-1", ONLINE)]
    apply.release()
    assert await asyncio.gather(first, *later) == [
        "ok file-0", "ok file-1", "ok file-2", "ok file-3", "ok stream-1", "ok online-1"]
    assert apply.commits == [["file-0"], ["online-1", "stream-1", "file-1", "file-2", "file-3"]]


async def test_a_commit_is_bounded_by_max_weight_and_the_online_lane_is_never_left_behind(store):
    apply = Recorder()
    group = GroupCommit(store, apply, name="test", lanes=3, max_weight=3)
    futures = [group.submit("file-0", BATCH)]
    await apply.first_commit_running()
    futures += [group.submit(f"file-{n}", BATCH) for n in range(1, 7)]
    futures.append(group.submit("online-1", ONLINE))
    apply.release()
    await asyncio.gather(*futures)
    assert apply.commits == [["file-0"], ["online-1", "file-1", "file-2"], ["file-3", "file-4", "file-5"], ["file-6"]]


async def test_close_commits_what_was_submitted(store):
    apply = Recorder()
    apply.release()
    group = GroupCommit(store, apply, name="test", lanes=2)
    futures = [group.submit(f"item-{n}", n % 2) for n in range(5)]
    await group.close()
    assert all(f.done() and not f.exception() for f in futures)
    assert sorted(item for commit in apply.commits for item in commit) == [f"item-{n}" for n in range(5)]


async def test_a_failed_transaction_fails_every_submission_of_it_and_writes_nothing(store):
    rolled_back = []

    def apply(connection, items):
        connection.execute("CREATE TABLE IF NOT EXISTS done (item TEXT)")
        connection.executemany("INSERT INTO done VALUES (?)", [(item,) for item in items])
        if "bad" in items:
            raise sqlite3.OperationalError("disk I/O error")
        return items

    group = GroupCommit(store, apply, name="test", on_rollback=lambda: rolled_back.append(True))
    assert await group.submit("first") == "first"
    together = [group.submit("good"), group.submit("bad")]
    for future in together:
        with pytest.raises(sqlite3.OperationalError):
            await future
    assert rolled_back == [True]
    assert await group.submit("after") == "after"
    rows = await store.run(lambda c: [r[0] for r in c.execute("SELECT item FROM done")])
    assert rows == ["first", "after"]
    await group.close()


async def test_a_lane_can_be_held_to_less_of_each_commit(store):
    apply = Recorder()
    group = GroupCommit(store, apply, name="test", lanes=2, lane_max_weight=(None, 2))
    futures = [group.submit("file-0", 1)]
    await apply.first_commit_running()
    futures += [group.submit(f"file-{n}", 1) for n in range(1, 6)] + [group.submit("online-1", 0)]
    apply.release()
    await asyncio.gather(*futures)
    assert apply.commits == [["file-0"], ["online-1", "file-1", "file-2"], ["file-3", "file-4"], ["file-5"]]


async def test_a_commit_with_online_work_takes_little_of_a_day_file(store):
    """Beside an online submission a commit takes at most BESIDE_FIRST_LANE_MAX_WEIGHT of each later
    lane (the rest of the file goes in the next, full-size commits); without online work it takes as
    much as its bounds allow. The old rule put the whole waiting file in the online payment's commit."""
    apply = Recorder()
    group = GroupCommit(store, apply, name="test", lanes=3)
    futures = [group.submit("file-0", BATCH)]
    await apply.first_commit_running()
    files = [f"file-{n}" for n in range(1, 41)]
    futures += [group.submit(item, BATCH) for item in files]
    futures += [group.submit("stream-1", STREAM), group.submit("online-1", ONLINE)]
    apply.release()
    await asyncio.gather(*futures)
    assert apply.commits == [["file-0"], ["online-1", "stream-1", *files[:BESIDE_FIRST_LANE_MAX_WEIGHT]],
                             files[BESIDE_FIRST_LANE_MAX_WEIGHT:]]
