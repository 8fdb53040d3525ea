"""Resilience on the real mesh (every service its own process, real mTLS, real SQLite):
each service SIGKILLed and restarted under load, the mainframe down for a whole
batch, a confirmation subscriber slower than the publisher. What the channels were
told is compared with what every stage recorded. Figures: docs/resilience.md."""

import asyncio
import sqlite3
import time
import uuid
from collections import Counter

import pytest

from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.ledger.v1 import ledger_pb2
from mainframe_bridge.link import set_emulator_mode
from paymesh_tools.simulate_day import settle
from paymesh import tls
from paymesh_tools import reconcile
from paymesh_tools.textui import format_table
from paymesh.topology import CHANNEL_NAMES, CHANNEL_VALUES, SERVICES, STORE_SERVICES, Identity
from tests.mainframe_bridge.support import emulator_book
from tests.harness import start_mesh, stop_mesh
from tests.resilience.support import (
    APPLIED, REJECTED, Orders, Tally, closed_loop, confirmed_by_channel, core_movements, online_channel,
    point_reconciliation_at, posted_by_channel, reconciled, stream_channel, subscribed,
)
from tests.channel_calls import AS_OF, ENV, upload

POSTED, QUEUED = ledger_pb2.POSTING_STATUS_POSTED, ledger_pb2.POSTING_STATUS_QUEUED
KILL_ORDER = ("payment-router", "core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations",
              "mainframe-emulator")
ONLINE_RATES = {"app": 40, "internet-banking": 30, "atm": 60, "agent": 30}  # payments/s, unary calls
STREAM_RATE = ("store", 120)  # payments/s on one StreamPayments stream
BEFORE_KILL, AFTER_RESTART = 1.0, 2.5  # seconds of load around each kill
BATCH_LINES = 5000
# The issue asks for a subscriber slow for a minute; here 20 s, with the subscriber's live buffer
# at 256 instead of 4,096 so that it overflows at this scale just as a default one would in a minute.
CUSTOMERS, WARM_UP, BASELINE_SECONDS, SLOW_SECONDS = 8, 2.0, 8.0, 20.0
SLOW_RATE, SUBSCRIBER_BUFFER = 50, 256  # confirmations/s the slow subscriber handles; its buffer at the service
# Payments/s with the slow subscriber must stay at least this share of the rate without it. A publisher
# held back by the subscriber would fall to about its 50/s (a share near 0.15); a shared 2-core machine
# alone moved the share between 0.59 and 1.19 over runs, so the bound sits between the two.
RATE_TOLERANCE = 0.4


def mixed_load(router: str, pki_dir, orders: Orders, tally: Tally, stop: asyncio.Event) -> asyncio.Future:
    """Every online channel at its rate and the stream channel, until stop and all are final."""
    return asyncio.gather(
        *(online_channel(router, pki_dir, c, rate, orders, tally, stop) for c, rate in ONLINE_RATES.items()),
        stream_channel(router, pki_dir, *STREAM_RATE, orders, tally, stop))


def show(capsys, title: str, text: str) -> None:
    """Figures in the test output even when pytest captures it."""
    with capsys.disabled():
        print(f"\n{title}\n{text}")


@pytest.mark.parametrize("journal", ["sqlite", "postgres"])
async def test_each_service_sigkilled_under_load_loses_nothing_and_applies_posts_confirms_once(
        tmp_path, pki_dir, settings, monkeypatch, capsys, request, journal):
    # Every store on either backend: its SQLite file, or a database of its own on a real PostgreSQL server
    # (each service SIGKILLed and restarted on it like the rest; a restarted core, bridge or confirmations
    # serves once the killed one's lease lapses, up to its TTL of 4 s, the router's outbox holding meanwhile).
    database = {}
    if journal == "postgres":
        server = request.getfixturevalue("postgres_server")
        database = {f"{SERVICES[name].env_prefix}_DATABASE_URL": server.create_database(
            f"{name.replace('-', '_')}_{uuid.uuid4().hex[:12]}") for name in STORE_SERVICES}
    mesh = start_mesh(tmp_path, pki_dir, **ENV, **database)
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("kill"), asyncio.Event()
        load = mixed_load(router, pki_dir, orders, tally, stop)
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
        show(capsys, f"{sum(tally.sent.values())} payments in {load_seconds:.1f}s (every store on {journal}),"
             " each service SIGKILLed and "
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
    header = ("CHANNEL", "SENT", "TOLD APPLIED", "APPLIED BY CORES", "POSTED", "CONFIRMED APPLIED", "REJECTED BY CORE",
              "CONFIRMED REJECTED")
    counts = {channel: (tally.sent[channel], told.get(channel, (0, 0))[0], applied_at_cores[channel],
                        posted.get((channel, POSTED), (0, 0))[0], confirmed.get((channel, APPLIED), (0, 0))[0],
                        rejected[channel], confirmed.get((channel, REJECTED), (0, 0))[0])
              for channel in sorted(tally.sent)}
    rows: list[tuple[object, ...]] = [header, *((channel, *n) for channel, n in counts.items())]
    book = emulator_book(home)
    rows.append(("total", *(sum(n[i] for n in counts.values()) for i in range(len(header) - 1))))
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


async def test_mainframe_down_for_a_whole_batch_of_5000_then_back_posts_all_in_order_and_reconciles(
        tmp_path, pki_dir, settings, monkeypatch, capsys):
    mesh = start_mesh(tmp_path, pki_dir, **ENV)
    try:
        point_reconciliation_at(monkeypatch, mesh, pki_dir)
        mainframe = mesh["mainframe-emulator"].address
        assert (await set_emulator_mode(mainframe, pki_dir, "DOWN")).startswith("DOWN")
        orders = Orders("down")
        lines = [orders.next("agent") for _ in range(BATCH_LINES)]
        for line in lines:
            line.idempotency_key = ""  # a batch line is named by (channel, batch id, line number)
        reply = await upload(mesh, pki_dir, "agent", "agent-while-mainframe-down", lines)
        assert reply.summary.applied_count == BATCH_LINES, reply.summary
        applied = {r.payment.payment_id for r in reply.results if r.payment.status == APPLIED}
        total = sum(line.amount.amount_minor for line in lines)

        queued = await settle(settings, AS_OF, {"accepted by router", "applied by cores", "sent to ledger"}, 60)
        assert queued.breaks == 0, reconcile.report(queued, AS_OF, show_all=False)
        assert await posted_by_channel(mesh, pki_dir, AS_OF) == {("agent", QUEUED): (BATCH_LINES, total)}
        assert emulator_book(tmp_path) == [], "the mainframe was down: nothing may be in its book"
        while_down = await reconcile.reconcile(reconcile.default_sources(settings), AS_OF)
        assert while_down.breaks > 0  # posted by mainframe: 0, until it is back

        assert (await set_emulator_mode(mainframe, pki_dir, "NORMAL")).startswith("NORMAL")
        back = time.monotonic()
        outcome = await reconciled(settings, AS_OF)
        settled_in = time.monotonic() - back
        book = emulator_book(tmp_path)
        show(capsys, f"mainframe DOWN for a whole batch of {BATCH_LINES} lines, then NORMAL: all posted and "
             f"reconciled {settled_in:.1f}s after it came back",
             format_table([("SENT", "APPLIED", "QUEUED WHILE DOWN", "POSTED AFTER", "MAINFRAME BOOK", "BREAKS DOWN",
                            "BREAKS AFTER"),
                           (BATCH_LINES, len(applied), BATCH_LINES, sum(code == 0 for _, code in book), len(book),
                            while_down.breaks, outcome.breaks)]))
        assert outcome.breaks == 0 and outcome.exit_code == 0, reconcile.report(outcome, AS_OF, show_all=False)
        assert await posted_by_channel(mesh, pki_dir, AS_OF) == {("agent", POSTED): (BATCH_LINES, total)}
        assert [posting_id for posting_id, _ in book] == bridge_queue_order(tmp_path), "not in the bridge's order"
        assert len(book) == BATCH_LINES and {pid for pid, _ in book} == applied and {c for _, c in book} == {0}
    finally:
        stop_mesh(mesh)


def bridge_queue_order(home) -> list[str]:
    """The posting ids in the order the bridge queued them (its own store)."""
    connection = sqlite3.connect(home / "data" / "mainframe-bridge.db")
    try:
        return [row[0] for row in connection.execute("SELECT posting_id FROM postings ORDER BY seq")]
    finally:
        connection.close()


async def test_a_slow_subscriber_does_not_slow_the_publisher_and_catches_up_with_nothing_missing(
        tmp_path, pki_dir, capsys):
    mesh = start_mesh(tmp_path, pki_dir, **ENV, PAYMESH_CONFIRMATIONS_BUFFER=str(SUBSCRIBER_BUFFER))
    try:
        router, tally, orders, stop = mesh["payment-router"].address, Tally(), Orders("slow"), asyncio.Event()
        load = asyncio.gather(*(closed_loop(router, pki_dir, c, CUSTOMERS, orders, tally, stop)
                                for c in ("atm", "agent", "store")))
        await asyncio.sleep(WARM_UP)
        baseline = await window(BASELINE_SECONDS)
        received, fast = [], asyncio.Event()
        subscriber = asyncio.create_task(slow_subscriber(mesh, pki_dir, "atm", received, fast))
        slowed = await window(SLOW_SECONDS)
        atm_answered = sum(p.channel == CHANNEL_VALUES["atm"] for p in tally.answered_between(0, slowed[1]))
        lag = atm_answered - len(received)
        stop.set()
        await asyncio.wait_for(load, timeout=60)
        fast.set()  # the subscriber now reads as fast as it can
        wanted = {p.payment_id for _, p in tally.answered if p.channel == CHANNEL_VALUES["atm"]}
        caught_up = time.monotonic()
        while not wanted <= {c.payment_id for c in received} and time.monotonic() - caught_up < 60:
            await asyncio.sleep(0.2)
        caught_up = time.monotonic() - caught_up
        subscriber.cancel()

        rates = [len(tally.answered_between(*window)) / (window[1] - window[0]) for window in (baseline, slowed)]
        with_sequence = [share_with_sequence(tally.answered_between(*window)) for window in (baseline, slowed)]
        show(capsys, f"a subscriber reading {SLOW_RATE}/s for {SLOW_SECONDS}s while {CUSTOMERS * 3} customers pay "
             f"(closed loop, atm + agent + store); subscriber buffer {SUBSCRIBER_BUFFER}",
             format_table([("WINDOW", "PAYMENTS/S", "REPLIES WITH CONFIRMATION SEQUENCE", "SUBSCRIBER BEHIND BY"),
                           (f"without it ({BASELINE_SECONDS}s)", f"{rates[0]:.0f}", f"{with_sequence[0]:.1%}", "-"),
                           (f"with it ({SLOW_SECONDS}s)", f"{rates[1]:.0f}", f"{with_sequence[1]:.1%}", lag)])
             + f"\ncaught up {caught_up:.1f}s after the load stopped: {len(received)} confirmations received, "
               f"{len(wanted)} atm payments")
        assert tally.unexpected == [] and tally.unresolved == []
        assert rates[1] >= RATE_TOLERANCE * rates[0], f"the publisher slowed down: {rates}"
        assert lag > SUBSCRIBER_BUFFER, "the subscriber was not slower than the publisher: nothing was tested"
        sequences = [c.sequence for c in received]
        assert sequences == sorted(set(sequences)), "out of sequence order, or a confirmation twice"
        assert len(received) == len({c.payment_id for c in received}) and {c.payment_id for c in received} == wanted
    finally:
        stop_mesh(mesh)


async def window(seconds: float) -> tuple[float, float]:
    """Lets the load run for seconds; the (start, end) of that window on the monotonic clock."""
    start = time.monotonic()
    await asyncio.sleep(seconds)
    return start, time.monotonic()


async def slow_subscriber(mesh, pki_dir, channel: str, received: list, fast: asyncio.Event) -> None:
    """A channel's subscriber from the beginning that handles SLOW_RATE confirmations a second until fast is set."""
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", channel)) as ch:
        call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
            conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
        async for response in call:
            for confirmation in response.batch.confirmations:
                received.append(confirmation)
                if not fast.is_set():
                    await asyncio.sleep(1 / SLOW_RATE)


def share_with_sequence(payments) -> float:
    """Of the applied payments answered, the share whose reply already carried its confirmation sequence."""
    applied = [p for p in payments if p.status == APPLIED]
    return sum(p.confirmation_sequence > 0 for p in applied) / max(len(applied), 1)
