"""Importing a loan master file into a core, and what it does to payments meanwhile: prints its
figures, asserts nothing.

    .venv/bin/python bench/bench_loan_import.py [--core core-mortgage] [--loans 3000]

Starts the core as a real process (mTLS, synchronous=FULL) as production runs it (no synthetic
portfolio), writes two master files of --loans loans each (the generator's terms, in the file's
format) and times `paymesh loans import` of the first into the empty core, the same file again
(nothing to add), then the payments latency on the first file's loans (one payment a message, as
an online payment reaches a core) with nothing else running, and while the second file is imported.
"""

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loan_core.client import apply_batches, payment  # noqa: E402
from loan_core.loan import LoanTerms  # noqa: E402
from loan_core.local import core_stub  # noqa: E402
from loan_core.portfolio import generate  # noqa: E402
from paymesh.business_calendar import bank_calendar  # noqa: E402
from paymesh.config import Settings  # noqa: E402
from paymesh.topology import ROUTER, SERVICES  # noqa: E402
from paymesh_tools import dev_pki, loans  # noqa: E402
from paymesh_tools.launch import start_service  # noqa: E402
from paymesh_tools.products import RULES_OF_CORE  # noqa: E402


def write_master_file(path: Path, core: str, terms: list[LoanTerms]) -> None:
    rules = RULES_OF_CORE[core]
    product = core.removeprefix("core-")
    lines = [",".join(loans.REQUIRED + loans.OPTIONAL)]
    for t in terms:
        asset_value = t.principal_minor * rules.portfolio.asset_value_percent // 100 if rules.asset_insurance_ppm else 0
        lines.append(f"{t.loan_id},{t.borrower_id},{product},{t.currency_code},{t.principal_minor},"
                     f"{t.annual_rate_bps},{t.term_months},{t.disbursement_date},{t.balloon_minor},{asset_value},"
                     f"{t.installments_paid}")
    path.write_text("\n".join(lines) + "\n")


async def payment_latencies(address: str, settings: Settings, terms: list[LoanTerms], count: int,
                            tag: str) -> list[float]:
    today = bank_calendar().value_date().isoformat()
    open_loans = [t for t in terms if t.installments_paid < t.term_months]
    latencies = []
    async with core_stub(address, settings, ROUTER) as stub:
        for n in range(count):
            loan = open_loans[n % len(open_loans)]
            started = time.perf_counter()
            await apply_batches(stub, [[payment(f"{tag}-{n}", loan.loan_id, 10_00, loan.currency_code, today)]])
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    return (f"p50 {statistics.median(ordered):.1f} ms, p99 {ordered[int(len(ordered) * 0.99) - 1]:.1f} ms "
            f"({len(ordered)} payments)")


async def measure(core: str, address: str, settings: Settings, home: Path, count: int) -> None:
    everything = generate(RULES_OF_CORE[core], seed=11, count=2 * count, as_of=bank_calendar().value_date())
    first, second = everything[:count], everything[count:]
    write_master_file(home / "first.csv", core, first)
    write_master_file(home / "second.csv", core, second)

    started = time.perf_counter()
    reply, faults = await loans.import_file(settings, home / "first.csv", core)
    took = time.perf_counter() - started
    assert reply is not None, faults
    print(f"import of {count} {core} loans into the empty core: {took:.2f} s ({count / took:,.0f} loans/s), "
          f"{reply.added} added")
    started = time.perf_counter()
    reply, _ = await loans.import_file(settings, home / "first.csv", core)
    took = time.perf_counter() - started
    assert reply is not None
    print(f"the same file again: {took:.2f} s, {reply.added} added, {reply.unchanged} already held")

    quiet = await payment_latencies(address, settings, first, 200, "quiet")
    print(f"payments, nothing else running:    {summary(quiet)}")
    importing = asyncio.create_task(loans.import_file(settings, home / "second.csv", core))
    during: list[float] = []
    while not importing.done():
        during += await payment_latencies(address, settings, first, 20, f"during-{len(during)}")
    reply, _ = await importing
    assert reply is not None
    print(f"payments while {count} more import: {summary(during)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--core", default="core-mortgage", choices=sorted(RULES_OF_CORE))
    parser.add_argument("--loans", type=int, default=3000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="paymesh-bench-import-"))
    dev_pki.ensure_dev_pki(home / "pki")
    process = start_service(args.core, home, home / "pki", PAYMESH_SYNTHETIC_PORTFOLIO="off")
    os.environ[f"{SERVICES[args.core].env_prefix}_ADDR"] = process.address  # where loans.import_file finds it
    settings = dataclasses.replace(Settings.from_env(), pki_dir=home / "pki")
    try:
        asyncio.run(measure(args.core, process.address, settings, home, args.loans))
    finally:
        process.terminate()


if __name__ == "__main__":
    main()
