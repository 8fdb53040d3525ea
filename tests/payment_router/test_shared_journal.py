"""Two router processes on one PostgreSQL journal (real processes, real mTLS, a real PostgreSQL
server): the same order sent to both at once is one payment, applied once, answered alike by both;
either answers for the other's payments; a replica killed with work in its outbox leaves nothing
behind (the other forwards it, once its claims' lease lapsed); the day's reconciliation, asked of one,
is exact; under load each outbox row goes out from one replica, not from both."""

import asyncio
import json
import time

import psycopg

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.payments.v1 import payment_service_pb2 as api
from bank.payments.v1 import payment_service_pb2_grpc as api_grpc
from payment_router.journal import CLAIM_LEASE_SECONDS, CONFIRMATIONS, POSTINGS
from paymesh import tls
from paymesh.topology import Identity
from tests.harness import ServiceProcess, start_mesh, start_service, stop_mesh
from tests.paymesh_tools.test_reconcile import AS_OF, ENV, open_loans, pay, until_exit_code


async def test_an_order_sent_to_two_routers_at_once_is_one_payment_and_the_day_reconciles(
        tmp_path, pki_dir, postgres_url):
    database = {"PAYMESH_PAYMENT_ROUTER_DATABASE_URL": postgres_url}
    mesh = start_mesh(tmp_path, pki_dir, **ENV, **database)
    first = mesh["payment-router"]
    # The second replica: its own home (port file, logs), the same peers, clock and database.
    second = start_service("payment-router", tmp_path / "second", pki_dir, **first.extra_env)
    try:
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        orders = [(f"both-{n}", loans[n % len(loans)]) for n in range(30)]
        answers = await asyncio.gather(*(pay(router.address, pki_dir, "atm", key, loan_id, 1_500)
                                         for key, loan_id in orders for router in (first, second)))
        pairs = list(zip(answers[::2], answers[1::2]))
        applied = {a.payment_id for a, b in pairs if a is not None and a.status == types_pb2.PAYMENT_STATUS_APPLIED}
        assert len(applied) >= 20
        for a, b in pairs:  # one payment, answered alike by both replicas
            assert (a is None) == (b is None)
            if a is not None:
                assert (a.payment_id, a.status, a.business_date) == (b.payment_id, b.status, b.business_date)

        # Kill one replica right after it answered: what its outbox held is forwarded by the other.
        more = [await pay(first.address, pki_dir, "atm", f"first-only-{n}", loans[n], 1_000) for n in range(5)]
        first.kill()
        applied |= {p.payment_id for p in more if p is not None and p.status == types_pb2.PAYMENT_STATUS_APPLIED}

        # The reconciliation asks the surviving replica: the shared journal is every replica's payments.
        addresses = {name: service.address for name, service in mesh.items()} | {"payment-router": second.address}
        settled = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF, timeout=30.0)
        assert settled.returncode == 0, settled.stdout + settled.stderr
        matched = next(line for line in settled.stdout.splitlines() if line.startswith("items matched"))
        assert matched.startswith(f"items matched: {len(applied)} payments"), (matched, len(applied))
        assert "duplicate suspects: 0" in matched
    finally:
        second.kill()
        stop_mesh(mesh)


def rows_sent(router: ServiceProcess) -> dict[str, int]:
    """What the router's forwarders sent, per topic, as it logged on its way out (SIGTERM)."""
    for line in reversed(router.log().splitlines()):
        if '"outbox forwarders stopped"' in line:
            return json.loads(line)["rows_sent"]
    raise AssertionError(f"{router.name} logged no rows sent:\n{router.log()[-2000:]}")


def journal_counts(url: str) -> tuple[int, int, int]:
    """(payments with a result, of them applied, outbox rows left) in the shared journal."""
    with psycopg.connect(url) as connection:
        answered, applied, left = connection.execute(
            "SELECT count(*) FILTER (WHERE status != %s), count(*) FILTER (WHERE status = %s),"
            " (SELECT count(*) FROM outbox) FROM payment",
            (types_pb2.PAYMENT_STATUS_ACCEPTED, types_pb2.PAYMENT_STATUS_APPLIED)).fetchall()[0]
    return answered, applied, left


async def until_outbox_empty(url: str, timeout: float) -> float:
    """Seconds until the shared journal's outbox is empty (every row acknowledged by its peer)."""
    started = time.monotonic()
    while journal_counts(url)[2]:
        assert time.monotonic() - started < timeout, f"outbox rows left after {timeout} s: {journal_counts(url)}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_two_routers_under_load_send_each_outbox_row_once_not_each_all(tmp_path, pki_dir, postgres_url):
    mesh = start_mesh(tmp_path, pki_dir, **ENV, PAYMESH_PAYMENT_ROUTER_DATABASE_URL=postgres_url)
    first = mesh["payment-router"]
    second = start_service("payment-router", tmp_path / "second", pki_dir, **first.extra_env)
    try:
        loans = [loan for loan_type in (types_pb2.LOAN_TYPE_CASH, types_pb2.LOAN_TYPE_VEHICLE)
                 for loan in open_loans(loan_type)]
        gate = asyncio.Semaphore(24)  # calls in flight at once, half on each replica

        async def paid(n: int):
            async with gate:
                router = (first, second)[n % 2]
                return await pay(router.address, pki_dir, "atm", f"load-{n}", loans[n % len(loans)], 1_000)

        answers = await asyncio.gather(*(paid(n) for n in range(400)))
        assert sum(a is not None and a.status == types_pb2.PAYMENT_STATUS_APPLIED for a in answers) >= 200
        await until_outbox_empty(postgres_url, timeout=20.0)  # every posting and confirmation delivered
        answered, applied, _ = journal_counts(postgres_url)
        assert answered == 400
        assert first.terminate() == 0 and second.terminate() == 0
        sent = [rows_sent(router) for router in (first, second)]
        distinct = {POSTINGS: applied, CONFIRMATIONS: answered}
        twice = {topic: sum(s.get(topic, 0) for s in sent) - rows for topic, rows in distinct.items()}
        print(f"rows sent by each replica: {sent}; distinct rows: {distinct}; sent twice: {twice}")
        # Each replica sent its own rows: both took a share, and none went out from both.
        assert all(s.get(CONFIRMATIONS, 0) >= 100 for s in sent), sent
        assert twice == {POSTINGS: 0, CONFIRMATIONS: 0}, twice
        addresses = {name: service.address for name, service in mesh.items()}
        second = start_service("payment-router", tmp_path / "second", pki_dir, **first.extra_env)
        addresses["payment-router"] = second.address
        settled = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF, timeout=30.0)
        assert settled.returncode == 0, settled.stdout + settled.stderr
    finally:
        second.kill()
        stop_mesh(mesh)


async def test_a_router_killed_holding_claims_leaves_its_rows_to_the_other_after_the_lease(
        tmp_path, pki_dir, postgres_url):
    mesh = start_mesh(tmp_path, pki_dir, **ENV, PAYMESH_PAYMENT_ROUTER_DATABASE_URL=postgres_url)
    first = mesh["payment-router"]
    second = start_service("payment-router", tmp_path / "second", pki_dir, **first.extra_env)
    try:
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        mesh["confirmations"].kill()  # the first's confirmations wait, claimed and sent, for their peer
        held = [await pay(first.address, pki_dir, "atm", f"held-{n}", loans[n], 1_000) for n in range(8)]
        answered = sum(p is not None for p in held)
        assert answered >= 5
        await asyncio.sleep(CLAIM_LEASE_SECONDS + 1.0)  # past a lease: renewed by the first, not taken
        before = holders(postgres_url)
        assert [len(keys) for keys in before.values()] == [answered], before
        first.kill()  # SIGKILL, holding its claims
        killed = time.monotonic()
        while (after := holders(postgres_url)) == before:
            assert time.monotonic() - killed < CLAIM_LEASE_SECONDS + 5.0, "the lease never lapsed"
            await asyncio.sleep(0.05)
        taken = time.monotonic() - killed
        while len(after) != 1 or after.keys() == before.keys():  # (the page may be claimed in two statements)
            assert time.monotonic() - killed < CLAIM_LEASE_SECONDS + 5.0, after
            await asyncio.sleep(0.05)
            after = holders(postgres_url)
        assert list(after.values()) == list(before.values()), "the second claimed them all"
        mesh["confirmations"] = mesh["confirmations"].restart()
        delivered = await until_outbox_empty(postgres_url, timeout=20.0)
        print(f"the killed replica's rows claimed by the other {taken:.2f} s after the SIGKILL"
              f" (lease {CLAIM_LEASE_SECONDS} s), delivered {delivered:.2f} s after confirmations restarted")
        # Not before its last renewal's lease lapsed, and soon after (the survivor looks at least once a second).
        assert CLAIM_LEASE_SECONDS - CLAIM_LEASE_SECONDS / 3 - 0.5 <= taken <= CLAIM_LEASE_SECONDS + 3.0, taken
        addresses = {name: service.address for name, service in mesh.items()} | {"payment-router": second.address}
        settled = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF, timeout=30.0)
        assert settled.returncode == 0, settled.stdout + settled.stderr
    finally:
        second.kill()
        stop_mesh(mesh)


def holders(url: str) -> dict[str, list[str]]:
    """The confirmation rows waiting in the outbox, by the replica that claimed them."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT claimed_by, item_key FROM outbox WHERE topic = %s ORDER BY id",
                                  (CONFIRMATIONS,)).fetchall()
    by_holder: dict[str, list[str]] = {}
    for claimant, key in rows:
        by_holder.setdefault(claimant, []).append(key)
    return by_holder


async def test_a_reversal_through_one_router_reaches_confirmations_after_the_result_another_holds(
        tmp_path, pki_dir, postgres_url):
    """The result is claimed by the replica that applied it, which is then SIGKILLed; its reversal,
    through the other replica, is free to claim but waits behind it: the channel hears of the
    payment, then of its reversal, though the result goes out only once the dead one's lease lapsed."""
    mesh = start_mesh(tmp_path, pki_dir, **ENV, PAYMESH_PAYMENT_ROUTER_DATABASE_URL=postgres_url)
    first = mesh["payment-router"]
    second = start_service("payment-router", tmp_path / "second", pki_dir, **first.extra_env)
    try:
        mesh["confirmations"].kill()
        paid = await pay(first.address, pki_dir, "store", "drawer-7", open_loans(types_pb2.LOAN_TYPE_CASH)[0], 1_000)
        assert paid is not None and paid.status == types_pb2.PAYMENT_STATUS_APPLIED
        async with tls.channel_for(second.address, pki_dir, Identity("channel", "store")) as ch:
            reversed_ = (await api_grpc.PaymentServiceStub(ch).ReversePayment(api.ReversePaymentRequest(
                idempotency_key="drawer-7-rev", payment_id=paid.payment_id, reason="drawer short"), timeout=10)).payment
        assert reversed_.status == types_pb2.PAYMENT_STATUS_REVERSED
        first.kill()  # holding the result's rows
        mesh["confirmations"] = mesh["confirmations"].restart()
        await until_outbox_empty(postgres_url, timeout=CLAIM_LEASE_SECONDS + 15.0)
        async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", "store")) as ch:
            call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
                conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
            heard = []
            async with asyncio.timeout(10):
                async for event in call:
                    heard += [c.status for c in event.batch.confirmations if c.payment_id == paid.payment_id]
                    if len(heard) >= 2:
                        break
            call.cancel()
        assert heard == [types_pb2.PAYMENT_STATUS_APPLIED, types_pb2.PAYMENT_STATUS_REVERSED], heard
    finally:
        second.kill()
        stop_mesh(mesh)
