"""The whole mesh on PostgreSQL loses its database server under load: every store (the router's
journal, the three cores, the bridge's queue, the confirmation log) in a database of its own on one
primary with a synchronous streaming standby on loopback, each service's URL naming both hosts
(`target_session_attrs=read-write`: libpq picks whichever is the primary). Channels pay online and
on a stream; the primary gets SIGKILL; the standby is promoted; the load goes on. Every service
opens its connection again on the new primary and its lease goes on: nothing lost (a commit was
acknowledged only once the standby had it), nothing applied, posted or confirmed twice, 0 breaks.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/resilience/test_database_failover.py
prints the figures."""

import asyncio
import time

from paymesh_tools import reconcile
from paymesh_tools.local_postgres import SUPERUSER
from paymesh_tools.textui import format_table
from paymesh.topology import SERVICES, STORE_SERVICES
from tests.channel_calls import AS_OF, ENV
from tests.harness import start_mesh, stop_mesh
from tests.resilience.support import Orders, Tally, point_reconciliation_at, reconciled
from tests.resilience.test_resilience import (
    assert_each_applied_once_posted_once_confirmed_once, mixed_load, show, stage_figures)

BEFORE_FAILURE, AFTER_PROMOTION = 3.0, 5.0  # seconds of load around the database's failover


async def test_the_database_primary_lost_under_load_the_standby_promoted_and_the_mesh_loses_nothing(
        tmp_path, pki_dir, settings, monkeypatch, capsys, primary_and_standby):
    primary, standby = primary_and_standby
    database = {}
    for name in STORE_SERVICES:
        database_name = name.replace("-", "_")
        primary.create_database(database_name)  # (the standby has it as soon as the primary commits it)
        database[f"{SERVICES[name].env_prefix}_DATABASE_URL"] = (
            f"postgresql://{SUPERUSER}:{primary.password}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
            f"/{database_name}?target_session_attrs=read-write")
    mesh = start_mesh(tmp_path, pki_dir, **ENV, **database)
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("dbfail"), asyncio.Event()
        load = mixed_load(router, pki_dir, orders, tally, stop)
        started = time.monotonic()
        await asyncio.sleep(BEFORE_FAILURE)
        sent_before = sum(tally.sent.values())
        assert primary.process is not None
        primary.process.kill()  # the primary's machine lost: SIGKILL, commits in flight
        failed_at = time.monotonic()
        await asyncio.to_thread(standby.promote)
        promoted_after = time.monotonic() - failed_at
        await asyncio.sleep(AFTER_PROMOTION)
        stop.set()
        try:
            async with asyncio.timeout(90):
                await load
        except TimeoutError:
            raise AssertionError(f"the load did not end: {tally.retried_because.most_common(8)}") from None
        load_seconds = time.monotonic() - started
        assert all(mesh[name].process.poll() is None for name in STORE_SERVICES), "a service died with its database"

        assert tally.unexpected == [] and tally.unresolved == [], (tally.unexpected[:5], tally.unresolved[:5])
        outcome = await reconciled(settings, AS_OF)
        figures = await stage_figures(mesh, pki_dir, tally, tmp_path)
        why = ", ".join(f"{reason} {n}" for reason, n in tally.retried_because.most_common(3))
        show(capsys, f"{sum(tally.sent.values())} payments in {load_seconds:.1f}s, every store on PostgreSQL; "
             f"the primary SIGKILLed after {sent_before}, the standby promoted {promoted_after:.2f} s later; "
             f"{tally.retries} client retries ({why})",
             format_table(figures) + "\n" + reconcile.report(outcome, AS_OF, show_all=False))
        assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, AS_OF, show_all=False)
        assert sum(tally.sent.values()) > sent_before, "no payment was made after the failover"
        await assert_each_applied_once_posted_once_confirmed_once(mesh, pki_dir, tally, tmp_path)
    finally:
        stop_mesh(mesh)
