"""The core's store seam (loan_core/store.py) on both backends: the same service, the same store
functions, on a SQLite file and on a real PostgreSQL database (PAYMESH_CORE_CASH_DATABASE_URL),
answer alike: payments applied once and replayed unchanged, refusals kept, reversals with their
revisions, the day's movements in order with exact totals, loans imported once, and all of it
still there after a restart."""

import dataclasses
from datetime import date

import grpc
import psycopg
import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from loan_core.client import apply_batches, payment
from loan_core.local import core_stub, running_core
from loan_core.portfolio import generate
from paymesh.topology import OPERATOR
from paymesh_tools.products import RULES_OF_CORE, RULES_OF_TYPE

AS_OF = date(2026, 11, 27)
DAY = AS_OF.isoformat()
RULES = RULES_OF_CORE["core-cash"]
PORTFOLIO = generate(RULES_OF_TYPE[types_pb2.LOAN_TYPE_CASH], seed=42, count=60, as_of=AS_OF)
OPEN_PEN = [t.loan_id for t in PORTFOLIO if t.currency_code == "PEN" and t.installments_paid < t.term_months]
OPEN_USD = [t.loan_id for t in PORTFOLIO if t.currency_code == "USD" and t.installments_paid < t.term_months]


def overdue_loan() -> str:
    """A PEN loan overdue on AS_OF: a reversal of its first small payment changes what its next one paid."""
    from loan_core.loan import originate
    from loan_core.queries import loan_message

    return next(t.loan_id for t in PORTFOLIO if t.currency_code == "PEN" and t.loan_id not in OPEN_PEN[:6]
                and loan_message(originate(t, RULES), RULES, AS_OF).status == loans_pb2.LOAN_STATUS_OVERDUE)


OVERDUE = overdue_loan()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str | None:
    """None: the core's SQLite file; else a new PostgreSQL database of the session's server."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def core_of(settings, database_url):
    return running_core(RULES, settings, count=len(PORTFOLIO), database_url=database_url)


async def scenario(stub, operator) -> list:
    """Every kind of write and read the store serves, in one order; what each answered."""
    transcript: list = []
    first = [payment(f"p-{n}", OPEN_PEN[n % 4], 25_00 + n, "PEN", DAY) for n in range(8)]
    first.append(payment("p-usd", OPEN_USD[0], 7_00, "USD", DAY))
    first += [payment("o-1", OVERDUE, 30_00, "PEN", DAY), payment("o-2", OVERDUE, 40_00, "PEN", DAY)]
    transcript += await apply_batches(stub, [first[:3], first[3:]])
    transcript += await apply_batches(stub, [first[:2]])  # replays
    transcript += await apply_batches(stub, [[payment("p-0", OPEN_PEN[0], 1, "PEN", DAY)]])  # reused id
    payoff = (await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=OPEN_PEN[5], as_of_date=DAY))).loan.payoff_amount
    transcript += await apply_batches(stub, [[payment("payoff", OPEN_PEN[5], payoff.amount_minor, "PEN", DAY)],
                                             [payment("late", OPEN_PEN[5], 10_00, "PEN", DAY)]])  # refused, kept
    # The first payment of the overdue loan reversed: o-2, later on the same loan, is applied again (revised).
    transcript.append(await stub.ReversePayment(core_pb2.ReversePaymentRequest(
        reversal_id="r-1", payment_id="o-1", business_date=DAY)))
    transcript += await apply_batches(stub, [[payment("late", OPEN_PEN[5], 10_00, "PEN", DAY)]])
    transcript += await apply_batches(stub, [[payment("next-day", OPEN_PEN[1], 3_00, "PEN", "2026-11-28")]])
    token = ""
    while True:
        page = await operator.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(
            business_date=DAY, page_size=4, page_token=token))
        transcript.append(page)
        if not (token := page.next_page_token):
            break
    for loan_id in (OPEN_PEN[0], OPEN_PEN[5], OPEN_USD[0], OVERDUE):
        transcript.append(await operator.GetLoan(core_pb2.GetLoanRequest(loan_id=loan_id, as_of_date=DAY)))
    borrower = PORTFOLIO[0].borrower_id
    transcript.append(await operator.ListBorrowerLoans(core_pb2.ListBorrowerLoansRequest(
        borrower_id=borrower, as_of_date=DAY)))
    return transcript


async def run_scenario(settings, database_url) -> list:
    async with core_of(settings, database_url) as running:
        address = f"127.0.0.1:{running.port}"
        async with core_stub(address, settings) as stub, core_stub(address, settings, OPERATOR) as operator:
            return await scenario(stub, operator)


async def test_the_store_applies_once_keeps_refusals_reverses_and_totals_the_day(settings, database_url):
    transcript = await run_scenario(settings, database_url)
    outcomes = [m for m in transcript if isinstance(m, core_pb2.PaymentOutcome)]
    assert all(o.HasField("applied") for o in outcomes[:11])
    assert outcomes[11:13] == outcomes[:2], "a replay gets its first answer"
    assert outcomes[13].rejection.reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert outcomes[14].applied.outstanding_balance.amount_minor == 0
    assert outcomes[15].rejection.reason == errors_pb2.ERROR_REASON_LOAN_PAID_OFF
    assert outcomes[16] == outcomes[15], "a refusal by the loan's state is kept for its replays"
    reversal = next(m for m in transcript if isinstance(m, core_pb2.ReversePaymentResponse))
    assert [r.revision_id for r in reversal.revisions] == ["o-2:R1"]
    pages = [m for m in transcript if isinstance(m, core_pb2.ListAppliedPaymentsResponse)]
    movements = [(m.movement_id, m.reversal, m.revision) for page in pages for m in page.movements]
    assert movements == [(f"p-{n}", False, False) for n in range(8)] + [
        ("p-usd", False, False), ("o-1", False, False), ("o-2", False, False), ("payoff", False, False),
        ("r-1", True, False), ("o-2:R1", False, True)]
    totals = {(t.currency_code, t.amount_minor) for t in pages[0].payment_totals}
    pen = sum(25_00 + n for n in range(8)) + 70_00 + outcomes[14].applied.amount.amount_minor
    assert totals == {("PEN", pen), ("USD", 7_00)} and pages[0].payment_count == 12
    assert [(t.currency_code, t.amount_minor) for t in pages[0].reversal_totals] == [("PEN", 30_00)]


async def test_both_backends_answer_alike_byte_for_byte(settings, postgres_url):
    on_sqlite = await run_scenario(settings, None)
    on_postgres = await run_scenario(dataclasses.replace(settings, data_dir=settings.home / "unused"), postgres_url)
    assert [m.SerializeToString(deterministic=True) for m in on_postgres] == [
        m.SerializeToString(deterministic=True) for m in on_sqlite]


async def test_what_was_applied_is_there_after_a_restart_and_applied_once(settings, database_url):
    batch = [payment(f"kept-{n}", OPEN_PEN[n % 3], 12_00, "PEN", DAY) for n in range(6)]
    async with core_of(settings, database_url) as running:
        async with core_stub(f"127.0.0.1:{running.port}", settings) as stub:
            applied = await apply_batches(stub, [batch])
            loan = await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=OPEN_PEN[0], as_of_date=DAY))
    async with core_of(settings, database_url) as running:  # the portfolio is not seeded again
        async with core_stub(f"127.0.0.1:{running.port}", settings) as stub:
            assert await apply_batches(stub, [batch]) == applied
            assert await stub.GetLoan(core_pb2.GetLoanRequest(loan_id=OPEN_PEN[0], as_of_date=DAY)) == loan
            day = await stub.ListAppliedPayments(core_pb2.ListAppliedPaymentsRequest(business_date=DAY))
    assert [m.movement_id for m in day.movements] == [p.payment_id for p in batch]


async def test_imported_loans_are_stored_once_and_other_terms_are_refused(settings, database_url):
    record = core_pb2.LoanRecord(loan_id="CSH-900000001", loan_type=types_pb2.LOAN_TYPE_CASH, borrower_id="B-1",
                                 principal=types_pb2.Money(currency_code="PEN", amount_minor=5_000_00),
                                 annual_rate_bps=3500, term_months=12, disbursement_date="2026-06-01")
    async with core_of(settings, database_url) as running:
        async with core_stub(f"127.0.0.1:{running.port}", settings, OPERATOR) as operator:
            first = await operator.ImportLoans(core_pb2.ImportLoansRequest(loans=[record], source="t"))
            again = await operator.ImportLoans(core_pb2.ImportLoansRequest(loans=[record], source="t"))
            assert (first.added, again.added, again.unchanged) == (1, 0, 1)
            other = core_pb2.LoanRecord()
            other.CopyFrom(record)
            other.term_months = 24
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await operator.ImportLoans(core_pb2.ImportLoansRequest(loans=[other], source="t"))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            loan = await operator.GetLoan(core_pb2.GetLoanRequest(loan_id=record.loan_id, as_of_date=DAY))
            assert loan.loan.outstanding_principal.amount_minor == 5_000_00


def test_the_postgresql_schema_is_the_core_s_numbered_migrations(settings, postgres_url):
    from loan_core.server import open_store
    from loan_core.portfolio import PortfolioSettings

    open_store(RULES, settings.data_dir, PortfolioSettings(42, 10, AS_OF), postgres_url).close()
    with psycopg.connect(postgres_url) as connection:
        versions = connection.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        tables = {row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        loans = connection.execute("SELECT count(*) FROM loans").fetchone()
    assert versions == [(1, "0001_loans_and_movements.sql")]
    assert {"loans", "movements", "revisions", "refusals"} <= tables and loans == (10,)
    assert not (settings.data_dir / "core-cash.db").exists(), "no SQLite file beside the database"


def test_a_database_holding_another_core_s_loans_is_refused_with_what_to_do(settings, postgres_url):
    from loan_core.server import open_store
    from loan_core.portfolio import PortfolioSettings
    from paymesh.postgres import DatabaseUnavailable

    open_store(RULES, settings.data_dir, PortfolioSettings(42, 10, AS_OF), postgres_url).close()
    with pytest.raises(DatabaseUnavailable, match="holds another product's loans .CSH-.*"
                                                  "PAYMESH_CORE_MORTGAGE_DATABASE_URL") as refused:
        open_store(RULES_OF_CORE["core-mortgage"], settings.data_dir, PortfolioSettings(42, 10, AS_OF), postgres_url)
    assert ":***@" in str(refused.value)
