"""`paymesh archive` against real processes: a day is archived only once closed and reconciled,
and its reconciliation is shown again from the archive alone, with the services gone; with --drop
the day leaves the hot stores, its keys still answered as the retention says."""

import gzip
import json
import os
import subprocess
import sys
import uuid

import grpc
import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.ledger.v1 import ledger_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.payments.v1 import payment_service_pb2 as api
from bank.payments.v1 import payment_service_pb2_grpc as api_grpc
from bank.payments.v1 import payments_pb2
from paymesh import tls
from paymesh.errors import error_info
from paymesh.topology import OPERATOR, SERVICES, Identity
from tests.harness import posting_status, start_mesh, stop_mesh
from tests.paymesh_tools.test_reconcile import AS_OF, ENV, open_loans, pay, until_exit_code


def paymesh(home, pki_dir, addresses: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAYMESH_HOME=str(home), PAYMESH_PKI_DIR=str(pki_dir))
    env.update({f"{SERVICES[name].env_prefix}_ADDR": address for name, address in addresses.items()})
    return subprocess.run([sys.executable, "-m", "paymesh_tools.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def matched_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("items matched"))


async def test_a_closed_reconciled_day_is_archived_and_reconciles_from_the_archive(tmp_path, pki_dir):
    mesh = start_mesh(tmp_path, pki_dir, **ENV)
    archive = tmp_path / "archive"
    try:
        addresses = {name: service.address for name, service in mesh.items()}
        for n, loan_id in enumerate(open_loans(types_pb2.LOAN_TYPE_CASH)[:4]):
            await pay(mesh["payment-router"].address, pki_dir, "atm", f"arch-{n}", loan_id, 20_000)
        live = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF)
        assert live.returncode == 0, live.stdout + live.stderr

        refused = paymesh(tmp_path, pki_dir, addresses, "archive", "--date", AS_OF, "--out", str(archive))
        assert refused.returncode == 1 and "is not closed at the ledger" in refused.stdout, refused.stdout
        assert not archive.exists()

        closed = paymesh(tmp_path, pki_dir, addresses, "close-day", "--date", AS_OF)
        assert closed.returncode == 0, closed.stdout + closed.stderr
        archived = paymesh(tmp_path, pki_dir, addresses, "archive", "--date", AS_OF, "--out", str(archive))
        assert archived.returncode == 0, archived.stdout + archived.stderr
        after_close = paymesh(tmp_path, pki_dir, addresses, "reconcile", "--date", AS_OF)
        again = paymesh(tmp_path, pki_dir, addresses, "archive", "--date", AS_OF, "--out", str(archive))
        assert again.returncode == 1 and "exists already" in again.stdout
    finally:
        stop_mesh(mesh)

    manifest = json.loads((archive / AS_OF / "manifest.json").read_text())
    assert manifest["business_date"] == AS_OF and manifest["reconciliation"]["breaks"] == 0
    router_file = next(f for f in manifest["files"] if f["source"] == "payment-router")
    lines = gzip.decompress((archive / AS_OF / router_file["file"]).read_bytes()).decode().splitlines()
    payments = [p for line in lines for p in json.loads(line)["payments"]]
    assert len(payments) >= 4 and all(p["business_date"] == AS_OF for p in payments)  # readable as it is

    # The services are gone: the archive alone answers, the same items and totals as the live run.
    from_archive = paymesh(tmp_path, pki_dir, {}, "reconcile", "--date", AS_OF, "--archive", str(archive), "--all")
    assert from_archive.returncode == 0, from_archive.stdout + from_archive.stderr
    assert matched_line(from_archive.stdout) == matched_line(after_close.stdout)
    assert "source unavailable" not in from_archive.stdout

    # An altered archive is refused, not reconciled.
    path = archive / AS_OF / router_file["file"]
    path.write_bytes(gzip.compress(b"{}\n"))
    altered = paymesh(tmp_path, pki_dir, {}, "reconcile", "--date", AS_OF, "--archive", str(archive))
    assert altered.returncode != 0 and "does not match its SHA-256" in altered.stderr


def store_line(output: str, store: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(f"{store}:"))


def in_use_kib(line: str) -> tuple[int, int]:
    """`... in use 120 KiB -> 96 KiB` -> (120, 96)."""
    before, after = line.split("in use ")[1].split(" -> ")
    return int(before.split()[0].replace(",", "")), int(after.split()[0].replace(",", ""))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_an_archived_day_is_dropped_from_the_hot_stores_and_its_keys_still_answer(tmp_path, pki_dir, backend,
                                                                                       request):
    """postgres: the router's journal, the bridge's queue and the confirmation log on PostgreSQL (partitioned
    by booking date: the day's partition dropped, so their size falls there too); the cores keep every
    movement, on SQLite in both."""
    databases = {} if backend == "sqlite" else {
        f"{SERVICES[name].env_prefix}_DATABASE_URL": request.getfixturevalue("postgres_server").create_database(
            f"archive_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}")
        for name in ("payment-router", "mainframe-bridge", "confirmations")}
    mesh = start_mesh(tmp_path, pki_dir, **ENV, **databases)
    archive = tmp_path / "archive"
    try:
        addresses = {name: service.address for name, service in mesh.items()}
        router, bridge = mesh["payment-router"].address, mesh["mainframe-bridge"].address
        loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        paid = [await pay(router, pki_dir, "atm", f"drop-{n}", loans[n % len(loans)], 1_000) for n in range(40)]
        applied = [p for p in paid if p is not None]
        assert len(applied) >= 30
        live = await until_exit_code(0, tmp_path, pki_dir, addresses, AS_OF)
        assert live.returncode == 0, live.stdout + live.stderr

        # Each store refuses a day not closed at the ledger, whoever asks, and keeps all of it.
        async with tls.channel_for(bridge, pki_dir, OPERATOR) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as open_day:
                await bridge_grpc.MainframeBridgeServiceStub(ch).DropBusinessDay(
                    bridge_pb2.DropBusinessDayRequest(business_date=AS_OF), timeout=10)
        assert open_day.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(open_day.value).reason == "BUSINESS_DAY_NOT_FINAL"
        refused = paymesh(tmp_path, pki_dir, addresses, "archive", "--date", AS_OF, "--out", str(archive), "--drop")
        assert refused.returncode == 1 and "is not closed at the ledger" in refused.stdout, refused.stdout

        closed = paymesh(tmp_path, pki_dir, addresses, "close-day", "--date", AS_OF)
        assert closed.returncode == 0, closed.stdout + closed.stderr
        dropped = paymesh(tmp_path, pki_dir, addresses, "archive", "--date", AS_OF, "--out", str(archive), "--drop")
        assert dropped.returncode == 0, dropped.stdout + dropped.stderr
        for store in ("router journal", "bridge queue", "confirmation log"):
            line = store_line(dropped.stdout, store)
            assert not line.startswith("0 rows"), line
            before, after = in_use_kib(line)
            assert after < before, f"the hot store's size falls: {line}"
        assert f"{len(applied):,} rows dropped" in store_line(dropped.stdout, "router journal")

        # A key of the archived day sent again: answered, never applied twice; another body: refused.
        with pytest.raises(grpc.aio.AioRpcError) as replay:
            await submit_order(router, pki_dir, "drop-0", applied[0].loan_id, 1_000)
        assert replay.value.code() == grpc.StatusCode.ALREADY_EXISTS
        info = error_info(replay.value)
        assert info.reason == "PAYMENT_ARCHIVED" and info.metadata["business_date"] == AS_OF, info
        assert info.metadata["payment_status"] == "APPLIED" and info.metadata["payment_id"] == applied[0].payment_id
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await submit_order(router, pki_dir, "drop-0", applied[0].loan_id, 2_000)
        assert error_info(reused.value).reason == "IDEMPOTENCY_KEY_REUSED"

        # The bridge still answers for a posting of the day; a subscriber resuming inside the day is told.
        postings = archived_messages(archive, "mainframe-bridge")
        posting_id = postings[0]["posting"]["posting_id"]
        assert await posting_status(bridge, pki_dir, posting_id, seconds=1) == ledger_pb2.POSTING_STATUS_POSTED
        async with tls.channel_for(mesh["confirmations"].address, pki_dir, Identity("channel", "atm")) as ch:
            call = conf_grpc.ConfirmationServiceStub(ch).Subscribe(conf_api.SubscribeRequest(
                start_position=conf_api.START_POSITION_AFTER_SEQUENCE, after_sequence=0))
            with pytest.raises(grpc.aio.AioRpcError) as resumed:
                await call.read()
        assert resumed.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert error_info(resumed.value).metadata["dropped_business_dates"] == AS_OF

        # Again: the archive is found, nothing more to drop.
        again = paymesh(tmp_path, pki_dir, addresses, "archive", "--date", AS_OF, "--out", str(archive), "--drop")
        assert again.returncode == 0 and "archived before" in again.stdout, again.stdout + again.stderr
        assert "  router journal: 0 rows dropped" in again.stdout
        live_after = paymesh(tmp_path, pki_dir, addresses, "reconcile", "--date", AS_OF)
    finally:
        stop_mesh(mesh)
    assert live_after.returncode != 0, "the hot stores no longer hold the day"
    from_archive = paymesh(tmp_path, pki_dir, {}, "reconcile", "--date", AS_OF, "--archive", str(archive))
    assert from_archive.returncode == 0, from_archive.stdout + from_archive.stderr
    assert f"{len(applied):,} payments" in matched_line(from_archive.stdout)


async def submit_order(router: str, pki_dir, key: str, loan_id: str, amount: int):
    async with tls.channel_for(router, pki_dir, Identity("channel", "atm")) as ch:
        order = payments_pb2.PaymentOrder(idempotency_key=key, loan_id=loan_id,
                                          amount=types_pb2.Money(currency_code="PEN", amount_minor=amount))
        return await api_grpc.PaymentServiceStub(ch).SubmitPayment(api.SubmitPaymentRequest(payment=order), timeout=10)


def archived_messages(archive, source_prefix: str) -> list[dict]:
    folder = archive / AS_OF
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["source"].startswith(source_prefix) and f["day"] == AS_OF)
    lines = gzip.decompress((folder / entry["file"]).read_bytes()).decode().splitlines()
    return [item for line in lines for item in next(iter(json.loads(line).values()))]


def test_a_day_is_dropped_from_every_router_journal_named(monkeypatch):
    """With one router per journal named (prod: a bulkhead each), the drop goes to each journal before
    the bridge's queue and the confirmation log; with none named, to the router alone."""
    from paymesh_tools.archive import hot_stores

    monkeypatch.setenv("PAYMESH_PAYMENT_ROUTER_ADDR", "127.0.0.1:7001")
    monkeypatch.delenv("PAYMESH_ROUTER_JOURNAL_ADDRS", raising=False)
    assert [(name, address) for name, _, address in hot_stores()][0] == ("router journal", "127.0.0.1:7001")
    monkeypatch.setenv("PAYMESH_ROUTER_JOURNAL_ADDRS", "10.0.0.1:50051, 10.0.0.2:50051")
    stores = [(name, store.service, address) for name, store, address in hot_stores()]
    assert stores[:2] == [("router journal at 10.0.0.1:50051", "payment-router", "10.0.0.1:50051"),
                          ("router journal at 10.0.0.2:50051", "payment-router", "10.0.0.2:50051")]
    assert [service for _, service, _ in stores[2:]] == ["mainframe-bridge", "confirmations"]
