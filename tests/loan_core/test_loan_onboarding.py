"""Loans enter a core only on purpose: with the synthetic portfolio off (production) a core on an
empty store is NOT_SERVING and says why; `paymesh loans import` (the real command, over mTLS as
the operator) loads the loan master file, the core serves, an imported loan can be asked about and
paid; the same file again changes nothing; other terms under a held loan id, bad lines and callers
other than the operator are refused with nothing written."""

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub
from paymesh.business_calendar import bank_calendar
from paymesh.config import Settings
from paymesh.errors import error_info
from paymesh import tls
from paymesh.server import LIVENESS
from paymesh.topology import OPERATOR, PROBE, ROUTER, Identity
from paymesh_tools.probe import grpc_health
from tests.harness import ServiceProcess, service_env, start_service

HEADER = ("loan_id,borrower_id,product,currency,principal_minor,tea_bps,term_months,disbursement_date,"
          "balloon_minor,asset_value_minor,installments_paid\n")
LOANS = [
    "CSH-700001,B000000101,cash,PEN,1500000,2450,24,2026-06-15,,,5",
    "CSH-700002,B000000102,cash,USD,800000,1800,12,2026-09-30,0,0,0",
    "CSH-700003,B000000101,cash,PEN,2000000,3100,36,2025-01-10,,,20",
]


def master_file(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def paymesh_loans_import(core: ServiceProcess, path: Path) -> subprocess.CompletedProcess:
    env = service_env(core.home, core.pki_dir, PAYMESH_CORE_CASH_ADDR=core.address)
    return subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "loans", "import", str(path), "--core", "cash"],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def empty_core(tmp_path, pki_dir, settings):
    """core-cash as production runs it (no synthetic portfolio), on an empty store."""
    core = start_service("core-cash", tmp_path, pki_dir, PAYMESH_SYNTHETIC_PORTFOLIO="off")
    yield core
    core.terminate()
    core.kill()


async def get_loan(core: ServiceProcess, settings: Settings, loan_id: str) -> loans_pb2.Loan | str:
    """The loan, or the reason it was refused."""
    async with core_stub(core.address, settings, OPERATOR) as stub:
        try:
            return (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id), timeout=5)).loan
        except grpc.aio.AioRpcError as error:
            info = error_info(error)
            return info.reason if info else error.code().name


async def liveness(core: ServiceProcess, settings) -> str:
    """The health of the "liveness" name: the process is up (what a liveness probe should ask)."""
    async with tls.channel_for(core.address, settings.pki_dir, PROBE) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=LIVENESS)
        reply = await stub.Check(request, timeout=5)  # type: ignore[attr-defined]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_an_imported_master_file_is_served_paid_and_importing_it_again_changes_nothing(
        empty_core, tmp_path, settings):
    assert await grpc_health(empty_core.address, settings) == "NOT_SERVING"
    assert await liveness(empty_core, settings) == "SERVING"  # not ready, but alive: no restart for it
    assert "NOT_SERVING: the store holds no loans; import the loan master file" in empty_core.log()
    path = master_file(tmp_path, "loans-2026-12-02.csv", LOANS)

    done = paymesh_loans_import(empty_core, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 loans added to core-cash, 0 already held" in done.stdout
    assert await grpc_health(empty_core.address, settings) == "SERVING"

    loan = await get_loan(empty_core, settings, "CSH-700001")
    assert isinstance(loan, loans_pb2.Loan)
    assert (loan.borrower_id, loan.principal_minor, loan.currency_code, loan.annual_rate_bps) == (
        "B000000101", 1500000, "PEN", 2450)
    assert len(loan.schedule) == 24  # the engine's schedule, from the file's terms
    assert sum(i.principal_minor for i in loan.schedule) == 1500000
    moved = await get_loan(empty_core, settings, "CSH-700003")
    assert isinstance(moved, loans_pb2.Loan) and moved.outstanding_principal.amount_minor < 2000000
    today = bank_calendar().value_date().isoformat()
    async with core_stub(empty_core.address, settings, ROUTER) as stub:
        [outcome] = await apply_batches(stub, [[payment("onboarded-1", "CSH-700001", 300_00, "PEN", today)]])
    assert outcome.HasField("applied"), outcome
    paid = await get_loan(empty_core, settings, "CSH-700001")
    assert isinstance(paid, loans_pb2.Loan) and paid.amount_due.amount_minor == loan.amount_due.amount_minor - 300_00

    again = paymesh_loans_import(empty_core, path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 loans added to core-cash, 3 already held with the same terms" in again.stdout
    assert await get_loan(empty_core, settings, "CSH-700001") == paid  # the payment is still there

    changed = master_file(tmp_path, "changed.csv", [LOANS[0], LOANS[1].replace(",800000,", ",900000,"),
                                                    "CSH-700004,B000000103,cash,PEN,500000,2000,6,2026-11-02,,,0"])
    refused = paymesh_loans_import(empty_core, changed)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert ("line 3: loan_id: CSH-700002: the core already holds this loan with other terms (principal_minor)"
            in refused.stdout)
    assert "NOT imported; core-cash is unchanged" in refused.stdout
    assert await get_loan(empty_core, settings, "CSH-700004") == "LOAN_NOT_FOUND"  # not half-written


async def test_bad_lines_are_refused_each_with_its_line_and_nothing_is_written(empty_core, tmp_path, settings):
    unreadable = master_file(tmp_path, "unreadable.csv", [LOANS[0], "CSH-700005,B1,cash,PEN,1500.00,2450,24,2026-06-15",
                                                          "CSH-700006,B1,pawn,PEN,100000,2450,12,2026-06-15,,,0"])
    done = paymesh_loans_import(empty_core, unreadable)
    assert done.returncode == 1
    assert "line 3: principal_minor '1500.00' is not a whole number" in done.stdout
    assert "line 4: product 'pawn' is not one of cash, mortgage, vehicle" in done.stdout

    wrong = master_file(tmp_path, "wrong.csv", [
        LOANS[0],
        "MTG-700007,B000000104,cash,PEN,100000,2450,12,2026-06-15,,,0",
        "CSH-700008,B000000105,cash,EUR,100000,2450,12,2026-06-15,,,0",
        "CSH-700009,B000000106,cash,PEN,100000,2450,0,2030-01-01,,,0",
        "CSH-700010,B000000107,cash,PEN,100000,2450,12,2026-06-15,50000,,0",
        "CSH-700001,B000000101,cash,PEN,1500000,2450,24,2026-06-15,,,5",
    ])
    done = paymesh_loans_import(empty_core, wrong)
    assert done.returncode == 1, done.stdout + done.stderr
    for expected in ("line 3: loan_id: MTG-700007: not a core-cash loan id",
                     "line 4: principal.currency_code: CSH-700008: 'EUR' is not a currency the product lends in",
                     "line 5: term_months: CSH-700009: must be 1 to 480",
                     "line 5: disbursement_date: CSH-700009: 2030-01-01 is after today",
                     "line 6: balloon.amount_minor: CSH-700010: the product has no balloon installment",
                     "line 7: loan_id: CSH-700001: also at loans[0]",
                     "core-cash: 6 faults in the loans; none was imported"):
        assert expected in done.stdout, done.stdout
    assert await get_loan(empty_core, settings, "CSH-700001") == "LOAN_NOT_FOUND"
    assert await grpc_health(empty_core.address, settings) == "NOT_SERVING"


@pytest.mark.parametrize("caller", [ROUTER, Identity("channel", "atm")])
async def test_only_the_operator_may_import_loans(empty_core, settings, caller):
    record = core_pb2.LoanRecord(
        loan_id="CSH-700001", borrower_id="B000000101", loan_type=types_pb2.LOAN_TYPE_CASH,
        principal=types_pb2.Money(currency_code="PEN", amount_minor=1500000), annual_rate_bps=2450, term_months=24,
        disbursement_date="2026-06-15")
    async with core_stub(empty_core.address, settings, caller) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.ImportLoans(core_pb2.ImportLoansRequest(loans=[record]), timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(denied.value)
    assert info is not None and info.reason == "CALLER_NOT_ALLOWED"
    assert await get_loan(empty_core, settings, "CSH-700001") == "LOAN_NOT_FOUND"
