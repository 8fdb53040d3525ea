"""The whole mesh with core-cash active/standby on PostgreSQL: two core-cash processes on one
database, the router told both addresses (one health-checked channel: it calls the lease holder);
channels pay through the router under load; the holder is SIGKILLed. The standby takes the lease
over, the router's channel follows it, and every stage agrees: each payment the channels were told
APPLIED applied once at its core, posted once, confirmed once; the reconciliation has 0 breaks.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/resilience/test_core_takeover_mesh.py
"""

import asyncio
import time
from collections import Counter
from types import SimpleNamespace

from paymesh_tools import reconcile
from paymesh_tools.textui import format_table
from paymesh.topology import SERVICES
from tests.channel_calls import AS_OF, ENV
from tests.harness import start_mesh, start_service, stop_mesh
from tests.loan_core.test_core_standby import health_of
from tests.resilience.support import Orders, Tally, core_movements, online_channel, point_reconciliation_at, \
    reconciled, stream_channel
from tests.resilience.test_resilience import assert_each_applied_once_posted_once_confirmed_once, stage_figures

ONLINE_RATES = {"atm": 40, "agent": 30}  # payments/s; cash and vehicle loans, in turn
STREAM_RATE = ("store", 80)
BEFORE_KILL, AFTER_KILL = 2.0, 7.0  # seconds of load around the holder's SIGKILL


async def test_core_cash_s_holder_sigkilled_in_the_mesh_its_standby_takes_over_and_every_stage_agrees(
        tmp_path, pki_dir, settings, postgres_url, monkeypatch, capsys):
    env = dict(ENV, PAYMESH_CLOCK_STARTED_AT=str(time.time()))
    peers = [name for name in SERVICES if name not in ("payment-router", "core-cash")]
    mesh = start_mesh(tmp_path, pki_dir, only=tuple(peers), **env)
    cash = [start_service("core-cash", tmp_path / f"core-cash-{n}", pki_dir,
                          PAYMESH_CORE_CASH_DATABASE_URL=postgres_url, **env) for n in (1, 2)]
    both = ",".join(process.address for process in cash)
    addresses = {f"{SERVICES[name].env_prefix}_ADDR": process.address for name, process in mesh.items()}
    mesh["payment-router"] = start_service("payment-router", tmp_path, pki_dir, PAYMESH_CORE_CASH_ADDR=both,
                                           **addresses, **env)
    try:
        assert [await health_of(process.address, settings) for process in cash] == ["SERVING", "NOT_SERVING"]
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        monkeypatch.setenv("PAYMESH_CORE_CASH_ADDR", both)  # the operator's reconciliation: the holder too
        stages = {**mesh, "core-cash": SimpleNamespace(address=both)}

        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("standby"), asyncio.Event()
        load = asyncio.gather(
            *(online_channel(router, pki_dir, c, rate, orders, tally, stop) for c, rate in ONLINE_RATES.items()),
            stream_channel(router, pki_dir, *STREAM_RATE, orders, tally, stop))
        started = time.monotonic()
        await asyncio.sleep(BEFORE_KILL)
        cash[0].process.kill()  # SIGKILL the lease holder, payments in flight
        killed = time.monotonic()
        while await health_of(cash[1].address, settings) != "SERVING":
            assert time.monotonic() - killed < 10, "the standby did not take over"
            await asyncio.sleep(0.05)
        took_over = time.monotonic() - killed
        await asyncio.sleep(max(0.0, AFTER_KILL - took_over))
        stop.set()
        await asyncio.wait_for(load, timeout=90)
        load_seconds = time.monotonic() - started
        cash_answers_after = [p for p in tally.answered_between(killed + took_over, time.monotonic())
                              if p.loan_id.startswith("CSH-")]

        assert tally.unexpected == [] and tally.unresolved == [], (tally.unexpected[:5], tally.unresolved[:5])
        outcome = await reconciled(settings, AS_OF)
        figures = await stage_figures(stages, pki_dir, tally, tmp_path)
        why = ", ".join(f"{k} x{n}" for k, n in Counter(tally.retried_because).most_common(3))
        with capsys.disabled():
            print(f"\n{sum(tally.sent.values())} payments in {load_seconds:.1f}s; core-cash's holder SIGKILLed, its "
                  f"standby SERVING {took_over:.2f}s after; {len(cash_answers_after)} cash payments answered after "
                  f"that; {tally.retries} client retries ({why})")
            print(format_table(figures) + "\n" + reconcile.report(outcome, AS_OF, show_all=False))
        assert cash_answers_after, "no cash payment went through the standby"
        assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, AS_OF, show_all=False)
        await assert_each_applied_once_posted_once_confirmed_once(stages, pki_dir, tally, tmp_path)
        movements = await core_movements(stages, pki_dir, AS_OF)
        assert len(movements["core-cash"]) > 100
    finally:
        for process in cash:
            process.kill()
        stop_mesh(mesh)
