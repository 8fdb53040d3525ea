"""Active/standby on PostgreSQL: one lease row per service in the service's own database, held by
one process at a time; the others wait as its standby, NOT_SERVING.

The row is (name, holder, epoch, expires_at), its times the database's own clock (no two
processes' clocks are compared). The holder renews it every RENEW seconds (the expiry moved to
now + TTL); a standby polls every POLL seconds and takes the row once its expiry has passed,
adding one to the epoch. A process that stops gracefully gives the lease up at once and says so
(NOTIFY): its standby, which LISTENs while it waits, takes over a round trip later, not a TTL or a poll.

Fencing: a lease is a belief, and a holder may be paused (a long GC, SIGSTOP, a node cut off)
past its expiry without knowing. So every write transaction of the service begins by reading
the row FOR SHARE with the epoch it holds (FencedStore): a transaction of a deposed holder
fails (LeaseLost) before it writes anything, and that process steps down to NOT_SERVING. The
row lock makes it exact, not a race: a takeover (an UPDATE of the row) waits for every write
transaction that has already checked the epoch to commit or roll back, so no write of the old
holder can commit after the new holder began. A paused holder's open transaction must not hold a
takeover back for as long as it is paused: the store's connection ends one left idle longer than a
TTL (idle_in_transaction_session_timeout), and a takeover that waited 1 s in vain for the row of a
lapsed lease ends the fenced transactions still open (pg_terminate_backend; nothing of theirs was
committed or acknowledged), as for a backend blocked writing to a paused client.

Only for PostgreSQL: a SQLite file has one process by nature.
"""

import asyncio
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import psycopg

from bank.common.v1 import errors_pb2
from paymesh.aio import wait_set
from paymesh.errors import abort
from paymesh.postgres import (STORE_UNAVAILABLE, DatabaseUnavailable, PostgresConnection, PostgresStore, connect,
                              in_transaction)

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a lease statement raises while the database is away (its connection lost, or not opened again
# yet: a failover, a restart): the lease goes on trying, never ends its task.
LEASE_STATEMENT_FAILURES: tuple[type[Exception], ...] = (psycopg.Error, DatabaseUnavailable)

LEASE_TABLE = """
CREATE TABLE IF NOT EXISTS service_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL
)"""
_TAKE = """
INSERT INTO service_lease AS lease (name, holder, epoch, expires_at, taken_at)
VALUES (%(name)s, %(holder)s, 1, now() + make_interval(secs => %(ttl)s), clock_timestamp())
ON CONFLICT (name) DO UPDATE
    SET holder = excluded.holder, epoch = lease.epoch + 1, expires_at = excluded.expires_at,
        taken_at = clock_timestamp()  -- once the row lock is had: after the old holder's last commit
    WHERE lease.expires_at < now()
RETURNING epoch"""
_RENEW = """
UPDATE service_lease SET expires_at = now() + make_interval(secs => %(ttl)s)
WHERE name = %(name)s AND holder = %(holder)s AND epoch = %(epoch)s
RETURNING epoch"""
# A standby's look, which takes no lock: only a lapsed (or absent) lease is worth the takeover's
# row lock, which would wait behind the holder's write transactions and hold its next one back.
_LAPSED = "SELECT expires_at < now() FROM service_lease WHERE name = %(name)s"
# Given up, and the standbys told at once (they LISTEN on RELEASED while they wait): a handover takes
# a round trip, not a poll.
RELEASED = "paymesh_lease_released"
_RELEASE = f"""
WITH released AS (
    UPDATE service_lease SET expires_at = now() - interval '1 second'
    WHERE name = %(name)s AND holder = %(holder)s AND epoch = %(epoch)s
    RETURNING name)
SELECT pg_notify('{RELEASED}', name) FROM released"""
_FENCE = "SELECT 1 FROM service_lease WHERE name = ? AND holder = ? AND epoch = ? FOR SHARE"
# The write transactions that passed the fence and are still open (their FOR SHARE shows as a
# RowShareLock on the table), ended: asked only once the lease has lapsed and a takeover waited for
# them in vain. A holder paused in the middle of a transaction whose backend is not idle (blocked
# writing results to a client that does not read them, say) would otherwise hold the takeover back
# for as long as it is paused. Ending them is safe: nothing of theirs was committed or acknowledged.
_END_FENCED = """
SELECT pid, pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'relation' AND relation = 'service_lease'::regclass AND mode = 'RowShareLock' AND granted
    AND pid <> pg_backend_pid()"""


class LeaseLost(Exception):
    """A write refused: this process does not hold its service's lease (it is the standby, or was
    deposed). Nothing of the transaction was written."""


@dataclass(frozen=True)
class LeaseTimes:
    """ttl: how long a lease lasts unrenewed (a SIGKILLed holder's standby takes over after about
    this); renew: how often the holder renews it; poll: how often a standby looks."""

    ttl: float = 4.0
    renew: float = 1.0
    poll: float = 0.25

    @classmethod
    def from_env(cls) -> "LeaseTimes":
        """PAYMESH_LEASE_TTL_SECONDS (4), PAYMESH_LEASE_RENEW_SECONDS (1), PAYMESH_LEASE_POLL_SECONDS (0.25)."""
        def seconds(name: str, default: float) -> float:
            return float(os.environ.get(f"PAYMESH_LEASE_{name}_SECONDS", "").strip() or default)

        times = cls(seconds("TTL", cls.ttl), seconds("RENEW", cls.renew), seconds("POLL", cls.poll))
        if not 0 < times.renew * 2 <= times.ttl or times.poll <= 0:
            raise ValueError(f"lease times {times}: renew at most half the TTL, all above 0")
        return times


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class Lease:
    """The lease of the service `name` in the database of url, as one process sees it: `epoch` is
    the epoch it holds, None while it is the standby. `await start(on_change)`, then on_change(True)
    when it becomes the holder and on_change(False) when it stops being one. Its statements run on
    a connection and thread of its own, so a long commit of the store never delays a renewal."""

    def __init__(self, url: str, name: str, times: LeaseTimes | None = None, holder: str | None = None):
        self.name = name
        self.times = times or LeaseTimes()
        # Who holds it, for an operator reading the row: host and process, and a nonce so that a
        # restarted process on a reused pid is not taken for the one before it.
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.epoch: int | None = None
        self._url = url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lease-{name}")
        self._connection: PostgresConnection | None = None
        self._listening = False  # on self._connection: LISTEN RELEASED was said
        try:
            self._executor.submit(self._open).result()  # DatabaseUnavailable: the service waits NOT_SERVING
        except BaseException:
            self._executor.shutdown()
            raise
        self._renewed_at = 0.0  # monotonic, of the last renewal the database confirmed
        self._reported: bool | None = None
        self._on_change: Callable[[bool], Awaitable[None]] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._reporting: asyncio.Task | None = None

    @property
    def active(self) -> bool:
        return self.epoch is not None

    # On the lease's own thread.

    def _open(self) -> None:
        self._connection = connect(self._url)
        raw = self._connection.raw
        # A renewal or a takeover waits for the row behind write transactions (fencing); a short wait
        # at most, then it is tried again, never a lease thread stuck behind a paused process.
        raw.execute("SET lock_timeout = '1s'")
        with raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("service_lease"),))
            raw.execute(LEASE_TABLE)

    def _statement(self, sql: str, **values: Any) -> list[tuple]:
        if self._connection is None:
            self._open()
        assert self._connection is not None
        try:
            cursor = self._connection.raw.execute(sql, {"name": self.name, "holder": self.holder,
                                                        "ttl": self.times.ttl, **values})
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.OperationalError:
            if self._connection.raw.broken:  # opened again at the next statement (a lock timeout is not this)
                self._connection.close()
                self._connection = None
            raise

    def _take(self) -> int | None:
        """The new epoch if the lease had lapsed (or never was) and this process took it."""
        lapsed = self._statement(_LAPSED)
        if lapsed and not lapsed[0][0]:
            return None
        try:
            rows = self._statement(_TAKE)
        except psycopg.errors.LockNotAvailable:
            ended = self._statement(_END_FENCED)
            if ended:
                log.warning("the lapsed holder's open transactions ended, for the takeover",
                            extra={"lease": self.name, "backends": [pid for pid, _ in ended]})
            raise
        return rows[0][0] if rows else None

    def _renew(self, epoch: int) -> bool:
        """False: the row is another holder's (or epoch's) now."""
        return bool(self._statement(_RENEW, epoch=epoch))

    def _release(self, epoch: int) -> None:
        self._statement(_RELEASE, epoch=epoch)

    def _wait_for_release(self, timeout: float) -> None:
        """A standby's pause: returns when a holder gives the lease up, or after timeout. (A stop of
        the standby waits for it: at most a poll.)"""
        if self._connection is None or self._connection.raw.broken:
            self._close()
            self._open()
        assert self._connection is not None
        if not self._listening:
            self._connection.raw.execute(f"LISTEN {RELEASED}")
            self._listening = True
        for _ in self._connection.raw.notifies(timeout=timeout, stop_after=1):
            pass

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._listening = False

    async def _call(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # On the event loop.

    async def start(self, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Tries to take the lease once (so a process alone is the holder at once), then keeps
        renewing or polling in a task of its own."""
        self._loop, self._wake, self._on_change = asyncio.get_running_loop(), asyncio.Event(), on_change
        await self._step()
        self._task = self._loop.create_task(self._run(), name=f"lease-{self.name}")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if self.active:
                await wait_set(self._wake, self.times.renew)
                self._wake.clear()
            else:
                try:
                    await self._call(self._wait_for_release, self.times.poll)
                except LEASE_STATEMENT_FAILURES as failed:
                    log.warning("lease wait failed; looking again", extra={"lease": self.name,
                                                                          "error": str(failed).strip()[:300]})
                    await asyncio.sleep(self.times.poll)
            await self._step()

    async def _step(self) -> None:
        """One renewal (holder) or one look (standby), then on_change if the role changed."""
        try:
            if self.epoch is None:
                taken = await self._call(self._take)
                if taken is not None:
                    self.epoch, self._renewed_at = taken, time.monotonic()
                    log.info("lease taken: active", extra={"lease": self.name, "epoch": taken})
            elif await self._call(self._renew, self.epoch):
                self._renewed_at = time.monotonic()
            else:
                self._step_down("another process holds the lease now")
        except LEASE_STATEMENT_FAILURES as failed:
            log.warning("lease statement failed; trying again", extra={"lease": self.name,
                                                                       "error": str(failed).strip()[:300]})
            if self.epoch is not None and time.monotonic() - self._renewed_at >= self.times.ttl:
                self._step_down("the lease could not be renewed within its TTL")
        await self._report()

    def _step_down(self, why: str) -> None:
        if self.epoch is not None:
            log.error("lease lost: NOT_SERVING, standby", extra={"lease": self.name, "epoch": self.epoch,
                                                                   "reason": why})
            self.epoch = None

    async def _report(self) -> None:
        if self.active != self._reported and self._on_change is not None:
            self._reported = self.active
            try:
                await self._on_change(self.active)
            except Exception:  # the lease goes on; the service's health stays what it said last
                log.exception("lease change not followed", extra={"lease": self.name})

    def _deposed(self, epoch: int) -> None:
        """A write found the row another's (on the store's thread): step down now, not at the next renewal."""
        def step_down() -> None:
            if self.epoch == epoch and self._loop is not None:
                self._step_down("a write transaction found another holder's epoch")
                self._reporting = self._loop.create_task(self._report())  # NOT_SERVING now

        if self._loop is not None:
            self._loop.call_soon_threadsafe(step_down)

    def fence(self, connection: PostgresConnection) -> None:
        """In a write transaction, before its first write: raises LeaseLost unless this process holds
        the lease at this epoch; holds the row FOR SHARE until COMMIT, so no takeover meanwhile."""
        epoch = self.epoch
        if epoch is None:
            raise LeaseLost(f"this {self.name} process is the standby: another holds the lease")
        if connection.execute(_FENCE, (self.name, self.holder, epoch)).fetchone() is None:
            self._deposed(epoch)
            raise LeaseLost(f"this {self.name} process no longer holds the lease (epoch {epoch} was taken over)")

    async def stop(self) -> None:
        """Stops renewing and, if it holds the lease, gives it up (its standby need not wait a TTL)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        epoch, self.epoch = self.epoch, None
        try:
            if epoch is not None:
                await self._call(self._release, epoch)
                log.info("lease released", extra={"lease": self.name, "epoch": epoch})
        except LEASE_STATEMENT_FAILURES as failed:
            log.warning("lease not released: the standby takes over when it lapses",
                        extra={"lease": self.name, "error": str(failed).strip()[:300]})
        finally:
            await self._call(self._close)
            self._executor.shutdown()


class FencedStore:
    """A PostgresStore whose every transaction begins with the lease's fence: the service's writes
    are the holder's alone. run() (reads outside a transaction) is not fenced."""

    def __init__(self, store: PostgresStore, lease: Lease):
        self.store = store
        self.lease = lease
        self.url = store.url

    async def start(self) -> None:
        """A transaction left idle (a paused process) is ended by the server after a TTL, so it
        cannot hold a takeover back longer; on every connection the store opens."""
        def bound(connection: PostgresConnection) -> None:
            connection.raw.execute(f"SET idle_in_transaction_session_timeout = {int(self.lease.times.ttl * 1000)}")

        self.store.on_reconnect = bound
        await self.store.run(bound)

    async def run(self, fn: Callable[..., T], *args) -> T:
        return await self.store.run(fn, *args)

    async def read(self, fn: Callable[..., T], *args) -> T:
        """On the store's read-only connection (PostgresStore.read): not fenced, it writes nothing."""
        return await self.store.read(fn, *args)

    async def transaction(self, fn: Callable[..., T], *args) -> T:
        return await self.store.run(in_transaction, self._fenced, fn, *args)

    def _fenced(self, connection: PostgresConnection, fn: Callable[..., T], *args) -> T:
        self.lease.fence(connection)
        return fn(connection, *args)

    def close(self) -> None:
        self.store.close()


def fenced(store: PostgresStore, service: str) -> "tuple[FencedStore, Lease]":
    """The service's store fenced by its lease (PAYMESH_LEASE_*), and the lease: an active and a
    standby process may share the database. The store is closed if the lease cannot be made."""
    try:
        lease = Lease(store.url, service, LeaseTimes.from_env())
    except BaseException:
        store.close()
        raise
    return FencedStore(store, lease), lease


# What a store call raises when this process may not, or cannot just now, use its store: deposed
# (another holds the lease), or the store unavailable (a database failover, a SQLite file locked).
STORE_LOST: tuple[type[Exception], ...] = (LeaseLost, *STORE_UNAVAILABLE)


async def refuse_on_standby(context: grpc.aio.ServicerContext, service: str) -> None:
    """A call to the standby: UNAVAILABLE (role standby), for the caller to send to the active one."""
    await abort(context, grpc.StatusCode.UNAVAILABLE,
                f"this {service} process is the standby (another holds the lease); its health is NOT_SERVING:"
                " call the active one", errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0,
                metadata={"role": "standby"})


async def refuse_store_lost(context: grpc.aio.ServicerContext, service: str, failed: BaseException) -> None:
    """A call whose store work failed with one of STORE_LOST: UNAVAILABLE, nothing of it written, to be
    sent again (deposed: to the active process; the database lost: once it is back)."""
    if isinstance(failed, LeaseLost):
        await abort(context, grpc.StatusCode.UNAVAILABLE, f"{failed}; call the active one",
                    errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0,
                    metadata={"role": "standby"})
    log.warning("the store's database cannot be reached", exc_info=failed, extra={"service": service})
    await abort(context, grpc.StatusCode.UNAVAILABLE, f"{service} cannot reach its database just now; send it again",
                errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0)
