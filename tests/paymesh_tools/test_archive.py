"""`paymesh archive` against real processes: a day is archived only once closed and reconciled,
and its reconciliation is shown again from the archive alone, with the services gone."""

import gzip
import json
import os
import subprocess
import sys

from bank.common.v1 import types_pb2
from paymesh.topology import SERVICES
from tests.harness import start_mesh, stop_mesh
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
