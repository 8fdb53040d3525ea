"""The whole mesh with confirmations active/standby on PostgreSQL: two confirmations processes on one
database, the router told both addresses (one health-checked channel: it publishes to the lease
holder); channels pay through the router under load; the holder is SIGKILLed. The standby takes the
lease over, the router's outbox publishes again what was not acknowledged, and every stage agrees:
each payment the channels were told APPLIED applied once at its core, posted once, confirmed once
(on the new holder's log, the acknowledged ones with their first sequence); the reconciliation has 0
breaks.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/resilience/test_confirmations_takeover_mesh.py
"""

import asyncio
import time
from collections import Counter
from types import SimpleNamespace

import psycopg

from paymesh_tools import reconcile
from paymesh_tools.textui import format_table
from paymesh.topology import SERVICES
from tests.channel_calls import AS_OF, ENV
from tests.confirmations.support import health_of
from tests.harness import start_mesh, start_service, stop_mesh
from tests.resilience.support import Orders, Tally, online_channel, point_reconciliation_at, reconciled, \
    stream_channel
from tests.resilience.test_resilience import assert_each_applied_once_posted_once_confirmed_once, stage_figures

ONLINE_RATES = {"atm": 40, "agent": 30}  # payments/s; cash and vehicle loans, in turn
STREAM_RATE = ("store", 80)
BEFORE_KILL, AFTER_KILL = 2.0, 7.0  # seconds of load around the holder's SIGKILL


async def test_confirmations_holder_sigkilled_in_the_mesh_its_standby_takes_over_and_every_stage_agrees(
        tmp_path, pki_dir, settings, postgres_url, monkeypatch, capsys):
    env = dict(ENV, PAYMESH_CLOCK_STARTED_AT=str(time.time()))
    peers = [name for name in SERVICES if name not in ("payment-router", "confirmations")]
    mesh = start_mesh(tmp_path, pki_dir, only=tuple(peers), **env)
    log = [start_service("confirmations", tmp_path / f"confirmations-{n}", pki_dir,
                         PAYMESH_CONFIRMATIONS_DATABASE_URL=postgres_url, **env) for n in (1, 2)]
    both = ",".join(process.address for process in log)
    addresses = {f"{SERVICES[name].env_prefix}_ADDR": process.address for name, process in mesh.items()}
    mesh["payment-router"] = start_service("payment-router", tmp_path, pki_dir, PAYMESH_CONFIRMATIONS_ADDR=both,
                                           **addresses, **env)
    try:
        assert [await health_of(process.address, settings) for process in log] == ["SERVING", "NOT_SERVING"]
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        monkeypatch.setenv("PAYMESH_CONFIRMATIONS_ADDR", both)  # the operator's reconciliation: the holder too
        stages = {**mesh, "confirmations": SimpleNamespace(address=both)}

        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("standby"), asyncio.Event()
        load = asyncio.gather(
            *(online_channel(router, pki_dir, c, rate, orders, tally, stop) for c, rate in ONLINE_RATES.items()),
            stream_channel(router, pki_dir, *STREAM_RATE, orders, tally, stop))
        started = time.monotonic()
        await asyncio.sleep(BEFORE_KILL)
        log[0].process.kill()  # SIGKILL the lease holder, confirmations in flight
        killed = time.monotonic()
        while await health_of(log[1].address, settings) != "SERVING":
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
        why = ", ".join(f"{k} x{n}" for k, n in Counter(tally.retried_because).most_common(3))
        with psycopg.connect(postgres_url) as connection:
            counted = connection.execute("SELECT count(*), count(DISTINCT (payment_id, status)), min(sequence),"
                                         " max(sequence) FROM confirmation").fetchone()
        with capsys.disabled():
            print(f"\n{sum(tally.sent.values())} payments in {load_seconds:.1f}s; confirmations' holder SIGKILLed, "
                  f"its standby SERVING {took_over:.2f}s after; the log: {counted[0]} confirmations, sequences "
                  f"{counted[2]}..{counted[3]}; {tally.retries} client retries ({why})")
            print(format_table(figures) + "\n" + reconcile.report(outcome, AS_OF, show_all=False))
        assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, AS_OF, show_all=False)
        await assert_each_applied_once_posted_once_confirmed_once(stages, pki_dir, tally, tmp_path)
        assert counted is not None and counted[0] == counted[1] == counted[3] and counted[2] == 1, \
            "each confirmation once, the sequences without a gap"
    finally:
        for process in log:
            process.kill()
        stop_mesh(mesh)
