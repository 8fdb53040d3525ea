"""Resilience on the real mesh (every service its own process, real mTLS, real SQLite):
each service SIGKILLed and restarted under load, the mainframe down for a whole
batch, a confirmation subscriber slower than the publisher. What the channels were
told is compared with what every stage recorded. Figures: docs/resilience.md."""

import asyncio
import sqlite3
import time
from collections import Counter

from bank.common.v1 import types_pb2
from bank.ledger.v1 import ledger_pb2
from mainframe_bridge.link import set_emulator_mode
from paymesh import reconcile
from paymesh.textui import format_table
from paymesh.topology import CHANNEL_NAMES
from tests.bridge_support import emulator_book
from tests.harness import start_mesh, stop_mesh
from tests.resilience_support import (
    APPLIED, REJECTED, Orders, Tally, confirmed_by_channel, core_movements, online_channel,
    point_reconciliation_at, posted_by_channel, reconciled, stream_channel, subscribed,
)
from tests.test_router import AS_OF, ENV

POSTED, QUEUED = ledger_pb2.POSTING_STATUS_POSTED, ledger_pb2.POSTING_STATUS_QUEUED
KILL_ORDER = ("payment-router", "core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations",
              "mainframe-emulator")
ONLINE_RATES = {"app": 40, "internet-banking": 30, "atm": 60, "agent": 30}  # payments/s, unary calls
STREAM_RATE = ("store", 120)  # payments/s on one StreamPayments stream
BEFORE_KILL, AFTER_RESTART = 1.0, 2.5  # seconds of load around each kill


def show(capsys, title: str, text: str) -> None:
    """Figures in the test output even when pytest captures it."""
    with capsys.disabled():
        print(f"\n{title}\n{text}")


async def test_each_service_sigkilled_under_load_loses_nothing_and_applies_posts_confirms_once(
        tmp_path, pki_dir, settings, monkeypatch, capsys):
    mesh = start_mesh(tmp_path, pki_dir, **ENV)
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("kill"), asyncio.Event()
        load = asyncio.gather(
            *(online_channel(router, pki_dir, c, rate, orders, tally, stop) for c, rate in ONLINE_RATES.items()),
            stream_channel(router, pki_dir, *STREAM_RATE, orders, tally, stop))
        started = time.monotonic()
        restarts = []
        for name in KILL_ORDER:
            await asyncio.sleep(BEFORE_KILL)
            mesh[name].process.kill()  # SIGKILL: no grace, whatever was in flight is cut
            killed = time.monotonic()
            mesh[name] = await asyncio.to_thread(mesh[name].restart)  # same port, store and settings
            restarts.append((name, f"{time.monotonic() - killed:.2f}s"))
            await asyncio.sleep(AFTER_RESTART)
        stop.set()
        try:
            await asyncio.wait_for(load, timeout=90)
        except TimeoutError:
            raise AssertionError(f"the load did not end: {tally.retried_because.most_common(8)}") from None
        load_seconds = time.monotonic() - started

        assert tally.unexpected == [] and tally.unresolved == [], (tally.unexpected[:5], tally.unresolved[:5])
        outcome = await reconciled(settings, AS_OF)
        figures = await stage_figures(mesh, pki_dir, tally, tmp_path)
        show(capsys, f"{sum(tally.sent.values())} payments in {load_seconds:.1f}s, each service SIGKILLed and "
             f"restarted ({', '.join(f'{n} {t}' for n, t in restarts)}); {tally.retries} client retries",
             format_table(figures) + "\n" + reconcile.report(outcome, AS_OF, show_all=False))
        assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, AS_OF, show_all=False)
        await assert_each_applied_once_posted_once_confirmed_once(mesh, pki_dir, tally, tmp_path)
    finally:
        stop_mesh(mesh)


async def stage_figures(mesh, pki_dir, tally: Tally, home) -> list[tuple]:
    """Per channel: sent, told APPLIED, applied by cores, posted by the mainframe, confirmed APPLIED, rejected."""
    by_core = await core_movements(mesh, pki_dir, AS_OF)
    applied_at_cores = Counter(CHANNEL_NAMES[m.channel] for movements in by_core.values() for m in movements)
    posted = await posted_by_channel(mesh, pki_dir, AS_OF)
    confirmed = await confirmed_by_channel(mesh, pki_dir, AS_OF)
    told = tally.applied_by_channel()
    rejected = Counter(CHANNEL_NAMES[c] for c in tally.rejected.values())
    rows = [("CHANNEL", "SENT", "TOLD APPLIED", "APPLIED BY CORES", "POSTED", "CONFIRMED APPLIED", "REJECTED BY CORE",
             "CONFIRMED REJECTED")]
    for channel in sorted(tally.sent):
        rows.append((channel, tally.sent[channel], told.get(channel, (0, 0))[0], applied_at_cores[channel],
                     posted.get((channel, POSTED), (0, 0))[0], confirmed.get((channel, APPLIED), (0, 0))[0],
                     rejected[channel], confirmed.get((channel, REJECTED), (0, 0))[0]))
    book = emulator_book(home)
    rows.append(("total", *(sum(r[i] for r in rows[1:]) for i in range(1, len(rows[0])))))
    rows.append(("mainframe book", "", "", "", len(book), "", "", ""))
    rows.extend((f"{name} applied", "", "", len(movements), "", "", "", "") for name, movements in by_core.items())
    return rows


async def assert_each_applied_once_posted_once_confirmed_once(mesh, pki_dir, tally: Tally, home) -> None:
    told = tally.applied_by_channel()
    movements = [m for by_core in (await core_movements(mesh, pki_dir, AS_OF)).values() for m in by_core]
    twice = [pid for pid, n in Counter(m.payment_id for m in movements).items() if n > 1]
    assert twice == [], f"applied twice at a core: {twice[:5]}"
    assert {m.payment_id for m in movements} == set(tally.applied), "cores and clients disagree on what applied"
    at_cores: dict[str, tuple[int, int]] = {}
    for m in movements:
        count, amount = at_cores.get(CHANNEL_NAMES[m.channel], (0, 0))
        at_cores[CHANNEL_NAMES[m.channel]] = (count + 1, amount + m.amount.amount_minor)
    assert at_cores == told

    posted = await posted_by_channel(mesh, pki_dir, AS_OF)
    assert {c: v for (c, status), v in posted.items() if status == POSTED} == told
    assert not any(status == QUEUED for _, status in posted), "postings still waiting for the mainframe"
    book = emulator_book(home)
    assert len(book) == len({pid for pid, _ in book}) == len(tally.applied), "the mainframe posted one per payment"
    assert {pid for pid, _ in book} == set(tally.applied) and {code for _, code in book} == {0}

    confirmed = await confirmed_by_channel(mesh, pki_dir, AS_OF)
    assert {c: v for (c, status), v in confirmed.items() if status == APPLIED} == told
    rejected = Counter(CHANNEL_NAMES[c] for c in tally.rejected.values())
    assert {c: v[0] for (c, status), v in confirmed.items() if status == REJECTED} == {
        c: n for c, n in rejected.items() if n}
    for channel in tally.sent:  # what each channel's subscriber reads: every result once, in sequence order
        mine = {pid for pid, p in tally.applied.items() if CHANNEL_NAMES[p.channel] == channel}
        mine |= {pid for pid, c in tally.rejected.items() if CHANNEL_NAMES[c] == channel}
        seen = await subscribed(mesh, pki_dir, channel, mine)
        sequences = [c.sequence for c in seen]
        assert sequences == sorted(set(sequences)), f"{channel}: out of order or repeated"
        assert len(seen) == len({c.payment_id for c in seen}) and {c.payment_id for c in seen} == mine
        assert all(c.status == (APPLIED if c.payment_id in tally.applied else REJECTED) for c in seen)
