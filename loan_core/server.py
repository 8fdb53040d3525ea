"""The LoanCoreService server every core runs, on its product's rules and its own store.

Only the payment router may apply or reverse payments; the operator (reconciliation)
may also read loans and the day's movements.
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import cast

import grpc
import psycopg

from bank.common.v1 import errors_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loan_core_service_pb2_grpc
from loan_core import onboarding, queries
from loan_core.apply import LoanCache, apply_batches
from paymesh.errors import Refused, abort
from paymesh.group_commit import PRIORITY_LANES, GroupCommit, lane_of
from loan_core.portfolio import PortfolioSettings, generate
from loan_core.reversal import reverse_payment
from loan_core.rules import ProductRules
from loan_core.store import POSTGRES_SCHEMA_DIR, SCHEMA, migrate, seed_if_empty
from paymesh import postgres, server, telemetry
from paymesh.authz import Bulkhead, CallerPolicy
from paymesh.business_calendar import bank_calendar, parse_date
from paymesh.config import Settings
from paymesh.lease import STORE_LOST, FencedStore, Lease, fenced, refuse_on_standby, refuse_store_lost
from paymesh.postgres import DatabaseUnavailable, PostgresStore
from paymesh.sqlite import Store, connect
from paymesh.streams import in_order
from paymesh.topology import OPERATOR, ROUTERS, SERVICES

log = logging.getLogger(__name__)
_SERVICE = core_pb2.DESCRIPTOR.services_by_name["LoanCoreService"].full_name
POLICY = CallerPolicy(
    default=ROUTERS,
    per_method={**{f"/{_SERVICE}/{m}": ROUTERS | {OPERATOR}
                   for m in ("GetLoan", "ListBorrowerLoans", "ListAppliedPayments")},
                # Loans enter a core only on purpose: the operator's import of the loan master file.
                f"/{_SERVICE}/ImportLoans": frozenset([OPERATOR])},
)
# How many micro-batches of one stream may wait for their commit (back-pressure beyond).
MAX_BATCHES_IN_FLIGHT = 64
# A bigger message would hold everyone's group commit too long: its payments are refused.
MAX_PAYMENTS_PER_MESSAGE = 10_000
# One commit's payments at most (more would hold the store's thread, and every stream, too long).
MAX_PAYMENTS_PER_COMMIT = 2000
# A day file's payments in one commit at most: about 30 ms of a cash core's work (60 for a
# mortgage's), which is what an online payment arriving meanwhile waits for at worst.
MAX_FILE_PAYMENTS_PER_COMMIT = 250


class LoanCoreService(loan_core_service_pb2_grpc.LoanCoreServiceServicer):
    def __init__(self, rules: ProductRules, store: "Store | PostgresStore | FencedStore", lease: Lease | None = None):
        """lease: on PostgreSQL, the core's active/standby lease (store is then fenced by it); None on
        SQLite, where the process is the file's only one and always active."""
        self.rules = rules
        self.store = store
        self.lease = lease
        self.loans = LoanCache(rules)
        self.commits = GroupCommit(store, partial(apply_batches, rules=rules, loans=self.loans),
                                   name=f"{rules.service}-commit", max_weight=MAX_PAYMENTS_PER_COMMIT, weight=len,
                                   on_rollback=self.loans.forget_all, lanes=PRIORITY_LANES,
                                   lane_max_weight=(None, None, MAX_FILE_PAYMENTS_PER_COMMIT))
        self._set_serving: Callable[[bool], Awaitable[None]] | None = None
        self.serving = False

    async def follow_health(self, set_serving: Callable[[bool], Awaitable[None]]) -> None:
        """SERVING only while this process holds the lease (PostgreSQL) and has loans to serve: a core
        on an empty store (a lost or new disk, with the synthetic portfolio off) stays NOT_SERVING
        until the operator imports the loan master file; a standby, until it takes the lease over."""
        self._set_serving = set_serving
        await self._follow_role()

    @property
    def active(self) -> bool:
        return self.lease is None or self.lease.active

    async def _follow_role(self) -> None:
        if self._set_serving is None:
            return  # told once the server has started (follow_health)
        self.serving = self.active and await self.store.run(onboarding.holds_loans)
        if self.active and not self.serving:
            product = self.rules.service.removeprefix("core-")
            log.error(f"NOT_SERVING: the store holds no loans; import the loan master file (`paymesh loans import "
                      f"FILE --core {product}`, docs/loan-cores.md#onboarding-loans-from-the-origination-system)",
                      extra={"store": store_name(self.store)})
        await self._set_serving(self.serving)

    async def _lease_changed(self, active: bool) -> None:
        """The lease taken (SERVING) or lost (NOT_SERVING, the standby). On taking it, the loans
        cached are forgotten on the store's thread: another process wrote them meanwhile."""
        if active:
            await self.store.run(lambda connection: self.loans.forget_all())
        log.info("active: the lease holder" if active else "standby: NOT_SERVING", extra={"core": self.rules.service})
        await self._follow_role()

    async def _refuse_unless_active(self, context) -> None:
        if not self.active:
            await refuse_on_standby(context, self.rules.service)

    async def ImportLoans(self, request, context):
        await self._refuse_unless_active(context)
        # The checks and schedules (CPU: a mortgage's takes about a millisecond) run off the store's
        # thread, so payments are not held; the transaction only looks up ids and inserts.
        checked = await self._answer(context, asyncio.to_thread(onboarding.check_loans, self.rules, request))
        reply = await self._answer(context, self.store.transaction(onboarding.add_loans, checked, request.source))
        if not self.serving and self._set_serving is not None and (reply.added or reply.unchanged):
            self.serving = True
            await self._set_serving(True)
            log.info("SERVING: loans imported into an empty store", extra={"loans": reply.added})
        return reply

    async def ApplyPayments(self, request_iterator, context):
        await self._refuse_unless_active(context)
        bulkhead = Bulkhead(context)
        async for ready in in_order(request_iterator, partial(self._outcomes, bulkhead=bulkhead),
                                    MAX_BATCHES_IN_FLIGHT):
            for outcomes in ready:
                if outcomes is None:
                    await abort(context, grpc.StatusCode.UNAVAILABLE,
                                f"{self.rules.service} could not store the payments; send them again",
                                errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=1.0)
                yield core_pb2.ApplyPaymentsResponse(outcomes=outcomes)

    async def _outcomes(self, request: core_pb2.ApplyPaymentsRequest, bulkhead: Bulkhead
                        ) -> list[core_pb2.PaymentOutcome] | None:
        """The message's outcomes once committed; None when the store failed (nothing was applied)."""
        payments, started = request.payments, time.time_ns()
        if len(payments) > MAX_PAYMENTS_PER_MESSAGE:
            refused = Refused(
                errors_pb2.ERROR_REASON_INVALID_FIELD,
                f"at most {MAX_PAYMENTS_PER_MESSAGE} payments per message; this one has {len(payments)}",
                "payments").rejection()
            return [core_pb2.PaymentOutcome(payment_id=p.payment_id, rejection=refused) for p in payments]
        try:
            lane = lane_of(request.priority)
            if bulkhead.foreign and any(p.channel in bulkhead.foreign for p in payments):
                outcomes = await self._carried_outcomes(payments, bulkhead, lane)
            else:
                outcomes = await self.commits.submit(list(payments), lane)
        except Exception:  # logged by the group commit
            return None
        _record_payment_spans(f"{self.rules.service} apply payment", request.traceparents, started, outcomes)
        return outcomes

    async def _carried_outcomes(self, payments, bulkhead: Bulkhead, lane: int) -> list[core_pb2.PaymentOutcome]:
        """Applies what the calling bulkhead may carry; each payment of another group is refused."""
        refusals = [bulkhead.refusal(p.channel) for p in payments]
        carried = [p for p, refused in zip(payments, refusals) if refused is None]
        applied = iter(await self.commits.submit(carried, lane) if carried else ())
        return [core_pb2.PaymentOutcome(payment_id=p.payment_id, rejection=refused) if refused else next(applied)
                for p, refused in zip(payments, refusals)]

    async def ReversePayment(self, request, context):
        await self._refuse_unless_active(context)
        return await self._answer(context, self.store.transaction(self._reverse, request, Bulkhead(context)))

    async def GetLoan(self, request, context):
        await self._refuse_unless_active(context)
        on = await _as_of(request.as_of_date, context)
        loan = await self._answer(context, self.store.run(queries.get_loan, self.rules, self.loans,
                                                          request.loan_id, on))
        return core_pb2.GetLoanResponse(loan=loan)

    async def ListBorrowerLoans(self, request, context):
        await self._refuse_unless_active(context)
        on = await _as_of(request.as_of_date, context)
        loans = await self._answer(context, self.store.run(queries.borrower_loans, self.rules, self.loans,
                                                           request.borrower_id, on))
        return core_pb2.ListBorrowerLoansResponse(loans=loans)

    async def ListAppliedPayments(self, request, context):
        await self._refuse_unless_active(context)
        return await self._answer(context, self.store.run(queries.list_applied, request))

    def _reverse(self, connection, request, bulkhead: Bulkhead):
        try:
            return reverse_payment(connection, self.rules, self.loans, request, bulkhead.refusal)
        except Refused:
            raise  # refused before changing anything
        except Exception:
            self.loans.forget_all()  # the transaction rolls back
            raise

    async def _answer(self, context, work):
        try:
            return await work
        except Refused as refused:
            await refused.abort(context)
        except STORE_LOST as failed:  # deposed meanwhile, or the database lost (a failover): nothing written
            await refuse_store_lost(context, self.rules.service, failed)

    def add_to(self, grpc_server) -> list[str]:
        loan_core_service_pb2_grpc.add_LoanCoreServiceServicer_to_server(self, grpc_server)
        return [_SERVICE]

    async def start(self) -> None:
        """On PostgreSQL, the lease: taken at once if no other process holds it, else this process is
        its standby. The group commit starts with the first payment."""
        if self.lease is not None:
            assert isinstance(self.store, FencedStore)
            await self.store.start()
            await self.lease.start(self._lease_changed)

    async def stop(self, grace: float) -> None:
        await self.commits.close()
        if self.lease is not None:  # after the last commit: the standby takes over at once
            await self.lease.stop()
        self.store.close()


def store_name(store: "Store | PostgresStore | FencedStore") -> str:
    """Where the store is, as a log line may say it (a database URL without its password)."""
    return str(store.path) if isinstance(store, Store) else postgres.redacted(store.url)


async def _as_of(text: str, context) -> date:
    """The date a view is computed on: as_of_date, or today in Lima (not the server's date)."""
    if not text:
        return bank_calendar().value_date()
    on = parse_date(text)
    if on is None:
        await Refused(errors_pb2.ERROR_REASON_INVALID_FIELD, f"as_of_date {text!r} is not a date written YYYY-MM-DD",
                      "as_of_date").abort(context)
    return on


def _record_payment_spans(name: str, traceparents, start_ns: int, outcomes) -> None:
    """One finished span per payment, a child of the payment's own trace."""
    for outcome, traceparent in zip(outcomes, traceparents):
        telemetry.record_item_span(name, traceparent, start_ns, {
            "payment_id": outcome.payment_id, "outcome": outcome.WhichOneof("result") or ""})


def open_store(rules: ProductRules, data_dir: Path, portfolio: PortfolioSettings,
               database_url: str | None = None) -> "Store | PostgresStore":
    """The core's store: its PostgreSQL database when database_url is given (migrated to this
    release's schema), else its SQLite file under data_dir; seeded with its generated portfolio the
    first time (when empty) if the synthetic portfolio is on (dev); in production nothing is seeded."""
    if database_url:
        return open_postgres_store(rules, database_url, portfolio)
    path = data_dir / f"{rules.service}.db"
    connection = connect(path)
    try:
        connection.executescript(SCHEMA)
        connection.execute("BEGIN IMMEDIATE")
        migrate(connection)
        added = portfolio.synthetic and seed_if_empty(connection, generate(
            rules, seed=portfolio.seed, count=portfolio.count, as_of=portfolio.as_of))
        connection.execute("COMMIT")
    finally:
        connection.close()
    if added:
        log.info("portfolio seeded", extra={"loans": added, "seed": portfolio.seed, "as_of": str(portfolio.as_of)})
    # Each group commit rewrites most pages of the loans table; checkpointing the WAL into the
    # file every 64 MB instead of every 4 MB copies each hot page once per checkpoint, not per commit.
    return Store(path, "PRAGMA wal_autocheckpoint=16384;")


def open_postgres_store(rules: ProductRules, url: str, portfolio: PortfolioSettings) -> PostgresStore:
    """The core's PostgreSQL database, migrated (loan_core/schema/, under an advisory lock) and, if
    the synthetic portfolio is on, seeded when empty. The seeding holds a lock on the loans table,
    so an active and a standby process starting together seed it once. A database holding another
    product's loans is refused: the cores' tables have the same names, so each needs its own."""
    opened = PostgresStore(url, POSTGRES_SCHEMA_DIR, name=rules.service)
    try:
        added, other = _seed_and_check(rules, url, portfolio)
    except BaseException as failed:
        opened.close()
        if isinstance(failed, psycopg.OperationalError):
            raise DatabaseUnavailable(f"cannot open {postgres.redacted(url)}: "
                                      f"{str(failed).strip().splitlines()[-1]}") from failed
        raise
    if other is not None:  # PAYMESH_DATABASE_URL shared by the cores, say
        opened.close()
        raise DatabaseUnavailable(f"the database {postgres.redacted(url)} holds another product's loans ({other}): "
                                  f"give each core a database of its own ({SERVICES[rules.service].env_prefix}"
                                  f"_DATABASE_URL)")
    if added:
        log.info("portfolio seeded", extra={"loans": added, "seed": portfolio.seed, "as_of": str(portfolio.as_of)})
    return opened


def _seed_and_check(rules: ProductRules, url: str, portfolio: PortfolioSettings) -> tuple[int, str | None]:
    """(loans seeded, a loan of another product the database holds, if any)."""
    connection = postgres.connect(url)
    try:
        with connection.raw.transaction():
            connection.execute("LOCK TABLE loans IN SHARE ROW EXCLUSIVE MODE")
            # The store's functions are typed on sqlite3's connection; PostgresConnection takes their calls.
            added = portfolio.synthetic and seed_if_empty(cast(sqlite3.Connection, connection), generate(
                rules, seed=portfolio.seed, count=portfolio.count, as_of=portfolio.as_of))
            other = connection.execute("SELECT loan_id FROM loans WHERE loan_type <> ? LIMIT 1",
                                       (rules.loan_type,)).fetchone()
    finally:
        connection.close()
    return int(added), other[0] if other else None


def build(rules: ProductRules, portfolio: PortfolioSettings | None = None,
          database_url: str | None = None) -> server.Build:
    """The core of `rules` on its store: the PostgreSQL database of database_url, else of
    PAYMESH_<CORE>_DATABASE_URL or PAYMESH_DATABASE_URL, else its SQLite file under settings.data_dir
    (seeded from portfolio, else PAYMESH_PORTFOLIO_*)."""
    def core(settings: Settings) -> LoanCoreService:
        url = database_url or postgres.database_url(SERVICES[rules.service].env_prefix)
        store = open_store(rules, settings.data_dir, portfolio or PortfolioSettings.from_env(), url)
        if not isinstance(store, PostgresStore):
            return LoanCoreService(rules, store)
        # On PostgreSQL an active and a standby process may share the database: a lease decides.
        return LoanCoreService(rules, *fenced(store, rules.service))

    return core


def main(rules: ProductRules) -> None:
    """A core's process (`python -m core_cash`: main(core_cash.rules.RULES))."""
    server.main(rules.service, POLICY, build(rules))
