"""`python -m loadtest`: a Locust run, headless, against a mesh of its own.

Starts every service as its own process on free ports (real mTLS, SQLite in a fresh
folder), runs loadtest/locustfile.py for a fixed time, writes Locust's CSV and HTML
reports, stops the mesh and prints the figures. Exit 0 only when the share of failed
calls is at most --max-failure-ratio and no user raised.

    .venv/bin/python -m loadtest --users 100 --spawn-rate 20 --run-time 30s --out .paymesh/loadtest

To load a cluster instead, run Locust itself (see docs/load-and-security.md):
    PAYMESH_PKI_DIR=... locust -f loadtest/locustfile.py --headless --host router.example:443 ...
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

from paymesh.business_calendar import bank_calendar
from paymesh.config import Settings
from paymesh_tools.dev_pki import ensure_dev_pki
from paymesh_tools.launch import START_TIMEOUT, start_mesh, stop_mesh

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
REPORT = "paymesh"  # <out>/paymesh_stats.csv, paymesh_failures.csv, ..., paymesh.html


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="concurrent Locust users (default 100)")
    parser.add_argument("--spawn-rate", type=float, default=20, help="users started per second (default 20)")
    parser.add_argument("--run-time", default="30s", help="how long, in Locust's notation (default 30s)")
    parser.add_argument("--out", type=Path, default=Path(".paymesh/loadtest"), help="reports and the mesh's state")
    parser.add_argument("--portfolio-size", type=int, default=12_000,
                        help="loans per core (default 12000: a run pays each loan once before any twice)")
    parser.add_argument("--max-failure-ratio", type=float, default=0.01, help="exit 1 above it (default 0.01)")
    return parser.parse_args(argv)


def failure_ratio(stats_csv: Path) -> tuple[int, int]:
    """(requests, failures) of the Aggregated row of Locust's stats CSV."""
    with open(stats_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"]), int(row["Failure Count"])
    raise ValueError(f"{stats_csv} has no Aggregated row")


def user_errors(exceptions_csv: Path) -> int:
    with open(exceptions_csv, newline="") as f:
        return sum(int(row["Count"]) for row in csv.DictReader(f))


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    ensure_dev_pki(settings.pki_dir)
    out = args.out.absolute()
    shutil.rmtree(out / "mesh", ignore_errors=True)
    today = bank_calendar().value_date().isoformat()
    env = dict(PAYMESH_PORTFOLIO_SIZE=str(args.portfolio_size), PAYMESH_PORTFOLIO_SEED="42",
               PAYMESH_PORTFOLIO_AS_OF=today, PAYMESH_LOG_LEVEL="WARNING")
    # The launcher's own parameters named, so that **env (environment variables only) cannot be taken for them.
    mesh = start_mesh(out / "mesh", settings.pki_dir, only=None, fixed_ports=False, timeout=START_TIMEOUT, **env)
    try:
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
                   "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.run_time, "--stop-timeout", "10",
                   "--host", mesh["payment-router"].address, "--csv", str(out / REPORT),
                   "--html", str(out / f"{REPORT}.html"), "--exit-code-on-error", "0"]
        print("$ " + " ".join(command), flush=True)
        locust = subprocess.run(command, env={**os.environ, **env, "PAYMESH_PKI_DIR": str(settings.pki_dir)})
    finally:
        stop_mesh(mesh)
    if locust.returncode != 0:
        print(f"locust exited {locust.returncode}", file=sys.stderr)
        return 1
    requests, failures = failure_ratio(out / f"{REPORT}_stats.csv")
    raised = user_errors(out / f"{REPORT}_exceptions.csv")
    ratio = failures / requests if requests else 1.0
    print(f"\n{requests} calls, {failures} failed ({ratio:.2%}), {raised} errors raised in users; "
          f"reports: {out / REPORT}_stats.csv, {out / REPORT}.html", flush=True)
    return 0 if requests and ratio <= args.max_failure_ratio and not raised else 1


if __name__ == "__main__":
    sys.exit(main())
