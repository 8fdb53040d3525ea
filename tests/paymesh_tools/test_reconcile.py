"""`paymesh reconcile` against real processes: a day that agrees, breaks we create,
and sources that cannot answer."""

import asyncio
import os
import subprocess
import sys
from datetime import date

import grpc

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc, payments_pb2
from paymesh_tools.products import RULES_OF_TYPE
from loan_core.portfolio import generate
from mainframe_bridge.link import set_emulator_mode
from paymesh import tls
from paymesh.topology import SERVICES, Identity
from tests.mainframe_bridge.support import post_all, posting, start_bridge, start_emulator, stub, wait_until_posted
from tests.channel_calls import Portfolio
from tests.harness import start_mesh, start_service, stop_mesh

AS_OF = "2026-11-27"
PORTFOLIO = Portfolio(seed=11, count=60, as_of=date.fromisoformat(AS_OF))
ENV = dict(PAYMESH_PORTFOLIO_SIZE="60", PAYMESH_PORTFOLIO_SEED="11", PAYMESH_PORTFOLIO_AS_OF=AS_OF,
           PAYMESH_CLOCK_START=f"{AS_OF}T10:00:00-05:00")


def reconcile_cli(home, pki_dir, addresses: dict[str, str], date_text: str,
                  extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAYMESH_HOME=str(home), PAYMESH_PKI_DIR=str(pki_dir), **(extra_env or {}))
    env.update({f"{SERVICES[name].env_prefix}_ADDR": address for name, address in addresses.items()})
    return subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "reconcile", "--date", date_text, "--all"],
                          env=env, capture_output=True, text=True, timeout=60)


async def until_exit_code(wanted: int, *args, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """The payment path is asynchronous (router -> core -> bridge -> mainframe): ask until it settles."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await asyncio.to_thread(reconcile_cli, *args)
        if result.returncode == wanted or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.3)


def open_loans(loan_type: int) -> list[str]:
    return [t.loan_id for t in generate(RULES_OF_TYPE[loan_type], **PORTFOLIO)
            if t.currency_code == "PEN" and t.installments_paid < t.term_months]


async def pay(router_address, pki_dir, channel: str, key: str, loan_id: str, amount: int):
    async with tls.channel_for(router_address, pki_dir, Identity("channel", channel)) as ch:
        order = payments_pb2.PaymentOrder(idempotency_key=key, loan_id=loan_id,
                                          amount=types_pb2.Money(currency_code="PEN", amount_minor=amount))
        try:
            reply = await api_grpc.PaymentServiceStub(ch).SubmitPayment(api.SubmitPaymentRequest(payment=order),
                                                                        timeout=10)
        except grpc.aio.AioRpcError as refused:  # a product rule refused it: nothing applied, nothing to post
            assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.details()
            return None
    return reply.payment


async def revisions_confirmed(address: str, pki_dir, channel: str, count: int, timeout: float = 10.0) -> list:
    """The channel's confirmations that revise a payment, from the start of its stream, until count are in."""
    found = []
    async with tls.channel_for(address, pki_dir, Identity("channel", channel)) as ch:
        call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(
            conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_BEGINNING))
        async with asyncio.timeout(timeout):
            async for event in call:
                found += [c for c in event.batch.confirmations if c.revision]
                if len(found) >= count:
                    break
        call.cancel()
    return found


async def test_a_day_through_the_whole_mesh_reconciles_and_a_stuck_ledger_is_a_break(tmp_path, pki_dir):
    mesh = start_mesh(tmp_path, pki_dir, **ENV)
    try:
        addresses = {name: service.address for name, service in mesh.items()}
        router = mesh["payment-router"].address
        loans = [(types_pb2.LOAN_TYPE_CASH, "atm"), (types_pb2.LOAN_TYPE_VEHICLE, "agent"),
                 (types_pb2.LOAN_TYPE_MORTGAGE, "store")]
        applied = 0
        for loan_type, channel in loans:
            for n, loan_id in enumerate(open_loans(loan_type)[:3]):
                payment = await pay(router, pki_dir, channel, f"rec-{loan_type}-{n}", loan_id, 25_000)
                applied += payment is not None and payment.status == types_pb2.PAYMENT_STATUS_APPLIED
        assert applied >= 6
        agreed = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF)
        assert agreed.returncode == 0, agreed.stdout + agreed.stderr
        assert "0 breaks" in agreed.stdout and "channel atm" in agreed.stdout and "core vehicle" in agreed.stdout

        # The store reverses a payment that was not the loan's latest: the agent's later one is applied
        # again without it, revised (the store's left 30.00 of the amount due that the agent's paid
        # first; now the agent's pays the due amount's first 100.00), confirmed to the agent, and its
        # difference posted: the day still reconciles, item by item.
        loan_id = open_loans(types_pb2.LOAN_TYPE_CASH)[6]
        async with tls.channel_for(router, pki_dir, Identity("channel", "store")) as ch:
            debt = (await api_grpc.PaymentServiceStub(ch).GetLoanDebt(api.GetLoanDebtRequest(loan_id=loan_id),
                                                                      timeout=10)).debt
        first = await pay(router, pki_dir, "store", "rev-1", loan_id, debt.amount_due.amount_minor - 30_00)
        later = await pay(router, pki_dir, "agent", "rev-2", loan_id, 100_00)
        async with tls.channel_for(router, pki_dir, Identity("channel", "store")) as ch:
            reversed_ = (await api_grpc.PaymentServiceStub(ch).ReversePayment(api.ReversePaymentRequest(
                idempotency_key="rev-1-back", payment_id=first.payment_id, reason="counterfeit note"),
                timeout=10)).payment
        assert reversed_.reversed_allocation == first.allocation
        [revision] = await revisions_confirmed(addresses["confirmations"], pki_dir, "agent", 1)
        assert (revision.payment_id, revision.revision, revision.reversed_payment_id) == (
            later.payment_id, 1, first.payment_id)
        assert revision.allocation_before == later.allocation != revision.allocation
        assert revision.amount == later.amount and sum(
            getattr(revision.allocation, f.name) for f in revision.allocation.DESCRIPTOR.fields) == 100_00
        settled = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF)
        assert settled.returncode == 0, settled.stdout + settled.stderr
        assert "1 reversals, 1 revisions" in settled.stdout, settled.stdout

        # The mainframe goes down: the next payments are applied and queued, not posted.
        await set_emulator_mode(addresses["mainframe-emulator"], pki_dir, "DOWN")
        loan_id = open_loans(types_pb2.LOAN_TYPE_CASH)[5]
        payment = await pay(router, pki_dir, "atm", "rec-while-down", loan_id, 30_000)
        assert payment.status == types_pb2.PAYMENT_STATUS_APPLIED
        broken = await until_exit_code(1, tmp_path, pki_dir, addresses, AS_OF)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        break_rows = [line for line in broken.stdout.splitlines() if line.endswith("BREAK")]
        assert any(row.startswith("channel atm") for row in break_rows)
        assert any(row.startswith("core cash") for row in break_rows)
        assert not any("vehicle" in row or "mortgage" in row for row in break_rows)

        await set_emulator_mode(addresses["mainframe-emulator"], pki_dir, "NORMAL")
        healed = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF)
        assert healed.returncode == 0, healed.stdout
    finally:
        stop_mesh(mesh)


async def test_unavailable_sources_are_reported_and_what_answers_is_still_compared(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    bridge = start_bridge(tmp_path, pki_dir, emulator.address)
    try:
        addresses = {"mainframe-bridge": bridge.address, "core-cash": "127.0.0.1:9",
                     "core-mortgage": "127.0.0.1:9", "core-vehicle": "127.0.0.1:9"}
        channel, bridge_stub = stub(bridge.address, pki_dir)
        async with channel:
            await post_all(bridge_stub, [posting(n, date=AS_OF) for n in range(20)])
            await wait_until_posted(bridge_stub, 20, date=AS_OF)
            incomplete = reconcile_cli(tmp_path, pki_dir, addresses, AS_OF)
            assert incomplete.returncode == 2, incomplete.stdout + incomplete.stderr
            assert "source unavailable: core-cash" in incomplete.stdout
            # Cores down: the bridge's two stages are still compared, for every loan type.
            assert "channel atm" in incomplete.stdout and "20 / 2,000.00" in incomplete.stdout

            await set_emulator_mode(emulator.address, pki_dir, "DOWN")
            await post_all(bridge_stub, [posting(100, amount=123_45, date=AS_OF, reversal=True)])
            broken = reconcile_cli(tmp_path, pki_dir, addresses, AS_OF)
        assert broken.returncode == 1, broken.stdout
        row = next(line for line in broken.stdout.splitlines() if line.endswith("BREAK"))
        assert row.split()[:4] == ["channel", "atm", "reversals", "PEN"]
        assert "1 / 123.45" in row and "0 / 0.00" in row
    finally:
        bridge.kill()
        emulator.kill()


async def test_the_router_stage_is_every_journal_s_when_there_are_several(tmp_path, pki_dir):
    """Two routers, each its own journal (as prod's bulkheads are), before the same cores, bridge and
    confirmations: asked of one router, the other's payments are breaks (applied, never accepted); with
    both named in PAYMESH_ROUTER_JOURNAL_ADDRS the day reconciles, every payment matched once."""
    mesh = start_mesh(tmp_path, pki_dir, **ENV)
    first = mesh["payment-router"]
    second = start_service("payment-router", tmp_path / "second", pki_dir, **first.extra_env)  # its own journal
    try:
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        answers = [await pay(router.address, pki_dir, "atm", f"{n}-{index}", loans[n % len(loans)], 1_200)
                   for n in range(6) for index, router in enumerate((first, second))]
        applied = [a for a in answers if a is not None and a.status == types_pb2.PAYMENT_STATUS_APPLIED]
        assert len({a.payment_id for a in applied}) == len(applied) >= 8
        addresses = {name: service.address for name, service in mesh.items()}
        both = {"PAYMESH_ROUTER_JOURNAL_ADDRS": f"{first.address},{second.address}"}
        settled = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF, both, timeout=30.0)
        assert settled.returncode == 0, settled.stdout + settled.stderr
        matched = next(line for line in settled.stdout.splitlines() if line.startswith("items matched"))
        assert matched.startswith(f"items matched: {len(applied)} payments"), matched
        one = await asyncio.to_thread(reconcile_cli, tmp_path, pki_dir, addresses, AS_OF)
        assert one.returncode != 0
        seconds = {a.payment_id for a in answers[1::2]
                   if a is not None and a.status == types_pb2.PAYMENT_STATUS_APPLIED}
        assert f"{len(seconds)} breaks" in one.stdout, one.stdout
        missing = {line.split()[0] for line in one.stdout.splitlines() if "missing  accepted by router" in line}
        assert missing == seconds, one.stdout  # every payment the second router took, and no other
    finally:
        second.kill()
        stop_mesh(mesh)
