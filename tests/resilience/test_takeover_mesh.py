"""The whole mesh with one service active/standby on PostgreSQL (core-cash, the bridge or
confirmations): two processes of it on one database, the router told both addresses (one
health-checked channel: it calls the lease holder); channels pay through the router under load; the
holder is SIGKILLed. The standby takes the lease over, the router's channel (and its outbox, for the
bridge and confirmations) follows it, and every stage agrees: each payment the channels were told
APPLIED applied once at its core, posted once, confirmed once; the reconciliation has 0 breaks.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/resilience/test_takeover_mesh.py
"""

import asyncio
import time
from collections import Counter
from types import SimpleNamespace

import psycopg
import pytest

from paymesh_tools import reconcile
from paymesh_tools.textui import format_table
from paymesh.topology import SERVICES
from tests.channel_calls import AS_OF, ENV
from tests.harness import health_of, start_mesh, start_service, stop_mesh
from tests.resilience.support import Orders, Tally, core_movements, online_channel, point_reconciliation_at, \
    reconciled, stream_channel
from tests.resilience.test_resilience import assert_each_applied_once_posted_once_confirmed_once, stage_figures

ONLINE_RATES = {"atm": 40, "agent": 30}  # payments/s; cash and vehicle loans, in turn
STREAM_RATE = ("store", 80)
BEFORE_KILL, AFTER_KILL = 2.0, 7.0  # seconds of load around the holder's SIGKILL


async def _what_its_store_shows(service: str, postgres_url: str, tally: Tally, stages, pki_dir,
                                after: float) -> str:
    """The service's own evidence that the standby carried on, checked; a line for the report."""
    if service == "core-cash":
        answered = [p for p in tally.answered_between(after, time.monotonic()) if p.loan_id.startswith("CSH-")]
        assert answered, "no cash payment went through the standby"
        assert len((await core_movements(stages, pki_dir, AS_OF))["core-cash"]) > 100
        return f"{len(answered)} cash payments answered after that"
    if service == "confirmations":
        with psycopg.connect(postgres_url) as connection:
            count, distinct, first, last = connection.execute(
                "SELECT count(*), count(DISTINCT (payment_id, status)), min(sequence), max(sequence)"
                " FROM confirmation").fetchone() or (0, 0, 0, 0)
        assert count == distinct == last and first == 1, "each confirmation once, the sequences without a gap"
        return f"the log: {count} confirmations, sequences {first}..{last}"
    with psycopg.connect(postgres_url) as connection:  # (each posted once: the mainframe's book, checked after)
        (count,) = connection.execute("SELECT count(*) FROM postings").fetchone() or (0,)
    return f"the queue: {count} postings"


@pytest.mark.parametrize("service", ["core-cash", "mainframe-bridge", "confirmations"])
async def test_a_holder_sigkilled_in_the_mesh_its_standby_takes_over_and_every_stage_agrees(
        tmp_path, pki_dir, settings, postgres_server, monkeypatch, capsys, service):
    prefix = SERVICES[service].env_prefix
    database = postgres_server.create_database(f"{service.replace('-', '_')}_{int(time.time() * 1000)}")
    env = dict(ENV, PAYMESH_CLOCK_STARTED_AT=str(time.time()))
    peers = [name for name in SERVICES if name not in ("payment-router", service)]
    mesh = start_mesh(tmp_path, pki_dir, only=tuple(peers), **env)
    addresses = {f"{SERVICES[name].env_prefix}_ADDR": process.address for name, process in mesh.items()}
    pair = [start_service(service, tmp_path / f"{service}-{n}", pki_dir, **{f"{prefix}_DATABASE_URL": database},
                          **addresses, **env) for n in (1, 2)]
    both = ",".join(process.address for process in pair)
    mesh["payment-router"] = start_service("payment-router", tmp_path, pki_dir, **{**addresses, f"{prefix}_ADDR": both},
                                           **env)
    try:
        assert [await health_of(process.address, pki_dir) for process in pair] == ["SERVING", "NOT_SERVING"]
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        monkeypatch.setenv(f"{prefix}_ADDR", both)  # the operator's reconciliation: the holder too
        stages = {**mesh, service: SimpleNamespace(address=both)}

        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("standby"), asyncio.Event()
        load = asyncio.gather(
            *(online_channel(router, pki_dir, c, rate, orders, tally, stop) for c, rate in ONLINE_RATES.items()),
            stream_channel(router, pki_dir, *STREAM_RATE, orders, tally, stop))
        started = time.monotonic()
        await asyncio.sleep(BEFORE_KILL)
        pair[0].process.kill()  # SIGKILL the lease holder, its work in flight
        killed = time.monotonic()
        while await health_of(pair[1].address, pki_dir) != "SERVING":
            assert time.monotonic() - killed < 10, "the standby did not take over"
            await asyncio.sleep(0.05)
        took_over = time.monotonic() - killed
        await asyncio.sleep(max(0.0, AFTER_KILL - took_over))
        stop.set()
        await asyncio.wait_for(load, timeout=90)
        load_seconds = time.monotonic() - started

        assert tally.unexpected == [] and tally.unresolved == [], (tally.unexpected[:5], tally.unresolved[:5])
        outcome = await reconciled(settings, AS_OF)
        figures = await stage_figures(stages, pki_dir, tally, tmp_path)
        shown = await _what_its_store_shows(service, database, tally, stages, pki_dir, killed + took_over)
        why = ", ".join(f"{k} x{n}" for k, n in Counter(tally.retried_because).most_common(3))
        with capsys.disabled():
            print(f"\n{sum(tally.sent.values())} payments in {load_seconds:.1f}s; {service}: the holder SIGKILLed, its "
                  f"standby SERVING {took_over:.2f}s after; {shown}; {tally.retries} client retries ({why})")
            print(format_table(figures) + "\n" + reconcile.report(outcome, AS_OF, show_all=False))
        assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, AS_OF, show_all=False)
        await assert_each_applied_once_posted_once_confirmed_once(stages, pki_dir, tally, tmp_path)
    finally:
        for process in pair:
            process.kill()
        stop_mesh(mesh)
