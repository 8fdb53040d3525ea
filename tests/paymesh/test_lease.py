"""The active/standby lease (paymesh.lease) on a real PostgreSQL server: one holder at a time, kept
by its renewals; a standby takes over once it lapses, with the next epoch; a deposed holder's write
fails before it writes and it steps down; a takeover waits for a write already fenced to finish."""

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from paymesh.lease import FencedStore, Lease, LeaseLost, LeaseTimes
from paymesh.postgres import STORE_UNAVAILABLE, PostgresStore

FAST = LeaseTimes(ttl=1.0, renew=0.25, poll=0.05)


@pytest.fixture
def schema_dir(tmp_path) -> Path:
    folder = tmp_path / "schema"
    folder.mkdir()
    (folder / "0001_written.sql").write_text(
        "CREATE TABLE written (id TEXT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());")
    return folder


class Process:
    """One process's view: its lease, its fenced store and the roles it was told it has."""

    def __init__(self, url: str, schema_dir: Path, name: str, times: LeaseTimes = FAST):
        self.lease = Lease(url, "core-test", times, holder=name)
        self.store = FencedStore(PostgresStore(url, schema_dir, name=name), self.lease)
        self.roles: list[bool] = []

    async def start(self, bound_idle: bool = True) -> "Process":
        if bound_idle:
            await self.store.start()
        await self.lease.start(self._changed)
        return self

    async def _changed(self, active: bool) -> None:
        self.roles.append(active)

    async def write(self, row_id: str, hold: float = 0.0, busy: bool = False) -> None:
        await self.store.transaction(_insert, row_id, hold, busy)

    def pause(self) -> None:
        """As if the process stopped answering: no more renewals (its store still works)."""
        assert self.lease._task is not None
        self.lease._task.cancel()

    async def stop(self) -> None:
        await self.lease.stop()
        self.store.close()


def _insert(connection, row_id: str, hold: float, busy: bool = False) -> None:
    connection.execute("INSERT INTO written (id) VALUES (?)", (row_id,))
    if busy:  # the server busy inside the transaction (not idle in it): no idle timeout ends it
        connection.execute("SELECT pg_sleep(?)", (hold,))
    else:
        time.sleep(hold)  # on the store's thread, inside the transaction
    connection.execute("UPDATE written SET at = clock_timestamp() WHERE id = ?", (row_id,))


def rows(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM written ORDER BY id")]


def lease_row(url: str) -> tuple:
    with psycopg.connect(url) as connection:
        found = connection.execute("SELECT holder, epoch FROM service_lease WHERE name = 'core-test'").fetchone()
        assert found is not None
        return found


async def wait_until(condition, seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "not within the time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_one_holder_its_renewals_keep_it_and_the_standby_cannot_write(postgres_url, schema_dir):
    a = await Process(postgres_url, schema_dir, "a").start()
    b = await Process(postgres_url, schema_dir, "b").start()
    try:
        assert (a.lease.epoch, b.lease.epoch) == (1, None) and (a.roles, b.roles) == ([True], [False])
        await asyncio.sleep(3 * FAST.ttl)  # renewed all along: the standby never takes it
        assert (a.lease.epoch, b.lease.epoch) == (1, None) and lease_row(postgres_url) == ("a", 1)
        await a.write("from-a")
        with pytest.raises(LeaseLost, match="standby"):
            await b.write("from-b")
        assert rows(postgres_url) == ["from-a"]
    finally:
        await a.stop()
        await b.stop()


async def test_a_paused_holder_is_taken_over_and_its_next_write_fails_and_it_steps_down(postgres_url, schema_dir):
    a = await Process(postgres_url, schema_dir, "a").start()
    b = await Process(postgres_url, schema_dir, "b").start()
    try:
        a.pause()
        took = await wait_until(lambda: b.lease.active, 5 * FAST.ttl)
        assert FAST.ttl - FAST.renew - 0.1 <= took <= FAST.ttl + 1.0, took
        assert b.lease.epoch == 2 and b.roles == [False, True] and lease_row(postgres_url) == ("b", 2)
        assert a.lease.epoch == 1, "a paused process does not know yet"
        with pytest.raises(LeaseLost, match="epoch 1 was taken over"):
            await a.write("late-from-a")
        await wait_until(lambda: not a.lease.active, 1.0)  # stepped down at once, not at a renewal
        assert a.roles == [True, False]
        await b.write("from-b")
        assert rows(postgres_url) == ["from-b"], "nothing of the deposed holder's transaction was written"
    finally:
        await a.stop()
        await b.stop()


async def test_a_takeover_waits_for_the_write_the_old_holder_already_fenced(postgres_url, schema_dir):
    a = await Process(postgres_url, schema_dir, "a").start(bound_idle=False)  # its transaction may idle
    b = await Process(postgres_url, schema_dir, "b").start()
    try:
        a.pause()
        # Fenced at once, then held open past the lease's expiry (by less than the takeover's 1 s lock
        # wait, after which it would end it): the takeover must wait for it.
        await a.write("held-by-a", FAST.ttl + 0.3)
        await wait_until(lambda: b.lease.active, 5 * FAST.ttl)
        with psycopg.connect(postgres_url) as connection:
            committed, taken = connection.execute(
                "SELECT (SELECT at FROM written WHERE id = 'held-by-a'), taken_at FROM service_lease").fetchone()
        assert taken > committed, "the new holder began only after the old holder's fenced write committed"
    finally:
        await a.stop()
        await b.stop()


async def test_a_paused_holder_s_open_transaction_is_ended_so_the_takeover_need_not_wait_for_it(
        postgres_url, schema_dir):
    a = await Process(postgres_url, schema_dir, "a").start()
    b = await Process(postgres_url, schema_dir, "b").start()
    try:
        a.pause()
        paused_write = asyncio.ensure_future(a.write("never", 10 * FAST.ttl))  # paused mid-transaction
        took = await wait_until(lambda: b.lease.active, 4 * FAST.ttl)
        assert took < 10 * FAST.ttl - 1
        with pytest.raises(psycopg.Error, match="idle-in-transaction timeout"):
            await paused_write  # the server ended its idle transaction: rolled back
        assert rows(postgres_url) == []
        with pytest.raises(LeaseLost):  # its store's connection opened again, and fenced
            await a.write("after")
    finally:
        await a.stop()
        await b.stop()


async def test_a_paused_holder_s_busy_transaction_is_ended_by_the_takeover(postgres_url, schema_dir, caplog):
    """Not idle, so no idle timeout ends it (a backend blocked writing to a paused client, say): once
    the lease has lapsed and the takeover waited for it in vain, the standby ends it."""
    a = await Process(postgres_url, schema_dir, "a").start()
    b = await Process(postgres_url, schema_dir, "b").start()
    try:
        a.pause()
        busy_write = asyncio.ensure_future(a.write("never", 30 * FAST.ttl, busy=True))
        took = await wait_until(lambda: b.lease.active, 6 * FAST.ttl)
        assert took < 30 * FAST.ttl - 5
        with pytest.raises(psycopg.Error):
            await busy_write  # its backend ended: rolled back
        assert rows(postgres_url) == [] and lease_row(postgres_url) == ("b", 2)
        assert "the lapsed holder's open transactions ended" in caplog.text
    finally:
        await a.stop()
        await b.stop()


async def test_a_holder_that_stops_gives_the_lease_up_and_the_standby_is_told_and_takes_it_at_once(
        postgres_url, schema_dir, caplog):
    # A TTL and a poll far longer than the handover may take: the standby learns of it by NOTIFY.
    slow = LeaseTimes(ttl=30.0, renew=1.0, poll=10.0)
    a = await Process(postgres_url, schema_dir, "a", slow).start()
    b = await Process(postgres_url, schema_dir, "b", slow).start()
    try:
        await asyncio.sleep(0.3)  # b is waiting, listening
        await a.stop()
        took = await wait_until(lambda: b.lease.active, 3.0)
        print(f"graceful handover: the standby active {took * 1000:.0f} ms after the holder's stop")
        assert took < 0.5 and lease_row(postgres_url) == ("b", 2)
        assert not [r.getMessage() for r in caplog.records if r.name == "paymesh.lease" and r.levelname != "INFO"]
        await b.write("from-b")
    finally:
        await b.stop()


async def test_the_lease_outlives_its_database_being_away_and_one_process_holds_it_once_back(
        schema_dir, own_postgres_server):
    """The database stopped under a holder and its standby (a failover, a restart), then back on the
    same port: each lease goes on trying (a connection that cannot be opened yet is not the end of it),
    and once the database answers again one of them holds the lease and writes."""
    server = own_postgres_server
    url = server.create_database("away")
    a = await Process(url, schema_dir, "a").start()
    b = await Process(url, schema_dir, "b").start()
    try:
        assert a.lease.active and not b.lease.active
        server.stop()
        await wait_until(lambda: not a.lease.active, 5.0)  # not renewed within its TTL: stepped down
        await asyncio.sleep(1.0)  # both keep trying against a database that is not there
        server.start()
        took = await wait_until(lambda: a.lease.active or b.lease.active, 10.0)
        print(f"the database back: a lease holder again {took:.2f} s later")
        assert not (a.lease.active and b.lease.active)
        holder = a if a.lease.active else b
        try:  # the store's own connection finds itself lost at its first use, and is opened again
            await holder.write("after-the-outage")
        except STORE_UNAVAILABLE:
            await holder.write("after-the-outage")
        assert rows(url) == ["after-the-outage"]
    finally:
        await a.stop()
        await b.stop()


def test_lease_times_come_from_the_environment_and_bad_ones_are_refused(monkeypatch):
    monkeypatch.setenv("PAYMESH_LEASE_TTL_SECONDS", "3")
    assert LeaseTimes.from_env() == LeaseTimes(ttl=3.0, renew=1.0, poll=0.25)
    monkeypatch.setenv("PAYMESH_LEASE_RENEW_SECONDS", "2")
    with pytest.raises(ValueError, match="renew at most half the TTL"):
        LeaseTimes.from_env()
