"""Two router processes on one PostgreSQL journal (real processes, real mTLS, a real PostgreSQL
server): the same order sent to both at once is one payment, applied once, answered alike by both;
either answers for the other's payments; a replica killed with work in its outbox leaves nothing
behind (the other forwards it); the day's reconciliation, asked of one, is exact."""

import asyncio

from bank.common.v1 import types_pb2
from tests.harness import start_mesh, start_service, stop_mesh
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
