"""The Locust load run, briefly: `python -m loadtest` starts its own mesh, runs every
channel's users headless for a few seconds, writes Locust's reports and stops the mesh."""

import csv
import os
import subprocess
import sys
from pathlib import Path

from loadtest.__main__ import REPORT

# Every kind of call the users make shows in the statistics ("... [bad request]": refused as expected).
EXPECTED_NAMES = {"SubmitPayment", "SubmitPayment [bad request]", "SubmitPayment (same key again)", "GetPayment",
                  "UploadBatch", "GetLoanDebt", "ListCustomerLoans"}


def test_a_short_headless_run_reports_every_kind_of_call_with_few_failures(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "loadtest", "--users", "30", "--spawn-rate", "30", "--run-time", "8s",
         "--portfolio-size", "3000", "--out", str(tmp_path), "--max-failure-ratio", "0.02"],
        capture_output=True, text=True, timeout=90, cwd=Path(__file__).resolve().parents[2],
        # Shorter think times, more retries and bad orders than a real day: a short run surely has each kind.
        env={**os.environ, "PAYMESH_LOAD_THINK_SCALE": "0.2", "PAYMESH_LOAD_RETRY_SHARE": "0.3",
             "PAYMESH_LOAD_BAD_SHARE": "0.2"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    with open(tmp_path / f"{REPORT}_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows.pop("Aggregated")
    assert int(total["Request Count"]) >= 100
    assert int(total["Failure Count"]) <= 0.02 * int(total["Request Count"])
    assert {row["Type"] for row in rows.values()} == {"grpc"}
    assert set(rows) >= EXPECTED_NAMES, sorted(rows)
    assert int(rows["SubmitPayment [bad request]"]["Failure Count"]) == 0  # each refused with its status
    assert (tmp_path / f"{REPORT}.html").stat().st_size > 10_000
    assert "calls," in run.stdout and "errors raised in users" in run.stdout


def test_a_users_token_is_minted_at_once_on_a_machine_just_booted_and_again_before_it_expires():
    # The old users took "minted at 0.0" for "never minted": with a monotonic clock under 600 s
    # (a fresh CI machine, a new container) every digital call went without a token.
    from loadtest.tokens import TOKEN_REFRESH_SECONDS, EndUserToken
    now, minted = [3.0], []
    token = EndUserToken(lambda: minted.append(now[0]) or f"token-{len(minted)}", clock=lambda: now[0])
    assert token.value() == "token-1" and minted == [3.0]
    now[0] += TOKEN_REFRESH_SECONDS - 1
    assert token.value() == "token-1"
    now[0] += 2
    assert token.value() == "token-2" and len(minted) == 2
