"""The operator's metrics after a short day through the real mesh, scraped from each service's real
/metrics: payments per channel, core and outcome as the router's day summary counts them, online latency
per channel, refusals by reason and refuser, the router's outbox and the bridge's queue while their peer is
away, the mainframe link, a durable consumer's lag, failing and dead-lettered webhooks, the day's close and
its late items."""

import asyncio
import datetime as dt
import time
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.payments.v1 import payment_operations_service_pb2 as ops_api
from bank.payments.v1 import payment_operations_service_pb2_grpc as ops_grpc
from paymesh import tls
from paymesh.topology import CORE_OF, OPERATOR, Identity
from tests.channel_calls import AS_OF, ENV, open_loans, order, refused, submit, upload
from tests.confirmations.support import Receiver, create_endpoint, origin
from tests.harness import sample_value, scrape, start_mesh, stop_mesh
from tests.payment_router.test_business_day import close

MONDAY = "2026-11-30"
LIMA = ZoneInfo("America/Lima")


def figures(home, service: str) -> dict[str, list]:
    return scrape(int((home / "run" / f"{service}-metrics.port").read_text()))


def value(families, family: str, sample: str | None = None, **labels) -> float:
    found = sample_value(families.get(family, []), sample or family, **labels)
    return 0.0 if found is None else found


async def until_figure(home, service: str, family: str, wanted, sample: str | None = None, seconds: float = 15.0,
                       **labels) -> dict[str, list]:
    """The service's scrape once value(family, labels) satisfies wanted (a value, or a predicate)."""
    check = wanted if callable(wanted) else (lambda v: v == wanted)
    deadline = time.monotonic() + seconds
    while True:
        families = figures(home, service)
        if check(value(families, family, sample, **labels)) or time.monotonic() > deadline:
            assert check(value(families, family, sample, **labels)), (service, family, labels,
                                                                       value(families, family, sample, **labels))
            return families
        await asyncio.sleep(0.1)


def cutoff_of(day: str) -> float:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(20, 0), LIMA).timestamp()


@pytest.mark.parametrize("journal", ["sqlite", "postgres"])
async def test_a_short_days_figures_on_every_services_metrics(tmp_path, pki_dir, journal, request):
    # The router's journal on either backend: its outbox gauges read it through the store's reader.
    database = {"PAYMESH_PAYMENT_ROUTER_DATABASE_URL": request.getfixturevalue("postgres_url")} \
        if journal == "postgres" else {}
    receiver = Receiver(always_fail=True)  # the store's webhook endpoint answers 503 to everything
    async with receiver as url:
        mesh = start_mesh(tmp_path, pki_dir, **ENV, **database, PAYMESH_METRICS_PORT="0",
                          PAYMESH_METRICS_SAMPLE_SECONDS="0.2", PAYMESH_WEBHOOK_ALLOWED_HOSTS=origin(url)[0],
                          PAYMESH_WEBHOOK_MAX_ATTEMPTS="2", PAYMESH_WEBHOOK_BASE_DELAY_SECONDS="0.05")
        try:
            await day_with_everything(tmp_path, pki_dir, mesh, url)
        finally:
            stop_mesh(mesh)


async def day_with_everything(home, pki_dir, mesh, url):
    # (a mortgage takes whole installments only: cash and vehicle loans take any amount)
    cash, vehicle = open_loans(types_pb2.LOAN_TYPE_CASH), open_loans(types_pb2.LOAN_TYPE_VEHICLE)
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", "store")) as ch:
        await create_endpoint(conf_grpc.ConfirmationServiceStub(ch), url)
    calls: Counter = Counter()  # online SubmitPayment calls per channel

    async def pay(channel: str, payment_order):
        calls[channel] += 1
        return await submit(mesh, pki_dir, channel, payment_order)

    async def refuse(channel: str, payment_order):
        calls[channel] += 1
        return await refused(mesh, pki_dir, channel, payment_order)

    # The morning: online on the ATM and the app, a store's day file; some refusals, by the router and by cores.
    for n, loan in enumerate([cash[0], cash[1], vehicle[0], vehicle[3]]):
        assert (await pay("atm", order(f"atm-{n}", loan, 2_000 + n))).status == types_pb2.PAYMENT_STATUS_APPLIED
    for n, loan in enumerate([cash[2], vehicle[1], vehicle[4]]):
        assert (await pay("app", order(f"app-{n}", loan, 3_000 + n))).status == types_pb2.PAYMENT_STATUS_APPLIED
    await refuse("atm", order("atm-unknown", "CSH-999999"))  # the core: LOAN_NOT_FOUND
    await refuse("atm", order("atm-over", cash[3], 300_001))  # the router: AMOUNT_OVER_CHANNEL_LIMIT
    await refuse("app", order("app-usd", cash[4], 1_000, "USD"))  # the core: CURRENCY_MISMATCH
    lines = [order(f"store-{n}", loan, 1_500) for n, loan in enumerate([cash[5], cash[6], vehicle[2], vehicle[5]])]
    reply = await upload(mesh, pki_dir, "store", "store-file-1", lines + [order("store-over", cash[7], 300_001)])
    assert Counter(r.payment.status for r in reply.results) == {types_pb2.PAYMENT_STATUS_APPLIED: 4,
                                                                types_pb2.PAYMENT_STATUS_REJECTED: 1}

    # The ATMs' books follow the confirmations as a durable consumer that has acknowledged nothing yet.
    async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", "atm")) as ch:
        subscription = conf_grpc.ConfirmationServiceStub(ch).Subscribe(conf_api.SubscribeRequest(
            consumer_name="books", start_position=conf_api.START_POSITION_BEGINNING))
        read: list = []
        async with asyncio.timeout(10):
            async for event in subscription:
                read += event.batch.confirmations
                if len(read) >= 5:
                    break
        subscription.cancel()
    assert len(read) == 5  # 4 applied, 1 the core refused; the router's own refusals are never confirmed
    confirmations = await until_figure(home, "confirmations", "paymesh_confirmations_consumer_lag", 5,
                                       channel="atm", consumer="books")
    # Every store confirmation failed once (503), then was dead-lettered (2 attempts at most).
    confirmations = await until_figure(home, "confirmations", "paymesh_webhook_deliveries",
                                       4, "paymesh_webhook_deliveries_total", channel="store", outcome="dead_lettered")
    assert value(confirmations, "paymesh_webhook_deliveries", "paymesh_webhook_deliveries_total", channel="store",
                 outcome="failed") == 4
    assert value(confirmations, "paymesh_webhook_deliveries", "paymesh_webhook_deliveries_total", channel="store",
                 outcome="delivered") == 0

    # The mainframe away: postings wait at the bridge, the link is down.
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_mainframe_link_up", 1)
    posted = 4 + 3 + 4  # every applied payment so far
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_mainframe_answers", posted,
                                "paymesh_mainframe_answers_total", outcome="posted", reason="")
    mesh["mainframe-emulator"].terminate()
    for n in range(2):
        await pay("atm", order(f"atm-mainframe-away-{n}", cash[8 + n], 1_000))
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_bridge_queued", 2)
    assert value(bridge, "paymesh_mainframe_link_up") == 0
    assert value(bridge, "paymesh_bridge_oldest_age_seconds") > 0
    assert value(bridge, "paymesh_mainframe_answers", "paymesh_mainframe_answers_total", outcome="posted",
                 reason="") == posted  # none for the two waiting
    mesh["mainframe-emulator"] = mesh["mainframe-emulator"].restart()
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_bridge_queued", 0)
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_mainframe_link_up", 1)
    assert value(bridge, "paymesh_bridge_oldest_age_seconds") == 0
    assert value(bridge, "paymesh_business_day_state", state="open") == 1
    assert value(bridge, "paymesh_business_day_cutoff_timestamp_seconds") == cutoff_of(AS_OF)

    # The bridge away: postings wait in the router's outbox.
    mesh["mainframe-bridge"].terminate()
    for n in range(2):
        await pay("atm", order(f"atm-bridge-away-{n}", cash[10 + n], 1_000))
    router = await until_figure(home, "payment-router", "paymesh_outbox_depth", 2,
                                peer="mainframe-bridge", topic="posting")
    # Their confirmations went (confirmations is up): once acknowledged and swept, none waits for it.
    router = await until_figure(home, "payment-router", "paymesh_outbox_depth", 0,
                                peer="confirmations", topic="confirmation")
    assert value(router, "paymesh_outbox_depth", peer="mainframe-bridge", topic="posting") == 2
    assert value(router, "paymesh_outbox_oldest_age_seconds", peer="mainframe-bridge", topic="posting") > 0
    assert value(router, "paymesh_peer_up", peer="mainframe-bridge") == 0
    assert {value(router, "paymesh_peer_up", peer=peer) for peer in ("core-cash", "core-mortgage", "core-vehicle",
                                                                      "confirmations")} == {1}

    # The router's figures match its own summary of the day: per channel, core and status.
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, OPERATOR) as ch:
        summary = await ops_grpc.PaymentOperationsServiceStub(ch).SummarizePayments(
            ops_api.SummarizePaymentsRequest(business_date=AS_OF))
    counted: Counter = Counter()
    for total in summary.totals:
        counted[types_pb2.Channel.Name(total.channel), CORE_OF[total.loan_type],
                types_pb2.PaymentStatus.Name(total.status)] += total.count
    channel_names = {"CHANNEL_ATM": "atm", "CHANNEL_APP": "app", "CHANNEL_STORE": "store"}
    for (channel, core, status), count in counted.items():
        assert value(router, "paymesh_payments", "paymesh_payments_total", channel=channel_names[channel],
                     core=core, status=status) == count, (channel, core, status)
    assert sum(counted.values()) == sum(s.value for s in router["paymesh_payments"]
                                        if s.name == "paymesh_payments_total") == 4 + 3 + 1 + 1 + 4 + 2 + 2
    for channel, count in calls.items():
        assert value(router, "paymesh_online_duration_seconds", "paymesh_online_duration_seconds_count",
                     channel=channel) == count
    refusals = {(s.labels["channel"], s.labels["reason"], s.labels["refused_by"]): s.value
                for s in router["paymesh_refusals"] if s.name == "paymesh_refusals_total"}
    assert refusals == {("atm", "LOAN_NOT_FOUND", "core-cash"): 1,
                        ("atm", "AMOUNT_OVER_CHANNEL_LIMIT", "payment-router"): 1,
                        ("app", "CURRENCY_MISMATCH", "core-cash"): 1,
                        ("store", "AMOUNT_OVER_CHANNEL_LIMIT", "payment-router"): 1}

    # The close, with the router (and its two postings) away: the day is closed, then its late items come.
    mesh["payment-router"].kill()
    mesh["mainframe-bridge"] = mesh["mainframe-bridge"].restart()
    closed = await close(mesh, pki_dir, AS_OF)
    assert closed.accepted_by_mainframe
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_business_day_state", 1, state="closed")
    assert value(bridge, "paymesh_business_day_state", state="open") == 0
    assert value(bridge, "paymesh_business_day_cutoff_timestamp_seconds") == cutoff_of(AS_OF)
    mesh["payment-router"] = mesh["payment-router"].restart()
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_late_postings", 2, "paymesh_late_postings_total")
    bridge = await until_figure(home, "mainframe-bridge", "paymesh_business_day_state", 1, state="open")
    assert value(bridge, "paymesh_business_day_cutoff_timestamp_seconds") == cutoff_of(MONDAY)
