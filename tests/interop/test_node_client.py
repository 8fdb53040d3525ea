"""A channel integrator's client in Node (@grpc/grpc-js, interop/node/client.mjs) through paymesh's own
protos and dev certificates, against a real mesh: the inquiry, an online payment, the stream, its
confirmations, a day file and a refusal's google.rpc details. Node and npm are on the machine; the
packages come from the npm registry (`npm ci` in interop/node, done here when they are missing)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import google.rpc
import pytest
from bank.common.v1 import types_pb2

from paymesh_tools.dev_tokens import mint
from tests.channel_calls import AS_OF, ENV, PORTFOLIO, open_loans
from tests.harness import start_mesh, stop_mesh

NODE_CLIENT = Path(__file__).resolve().parents[2] / "interop" / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed for the interop test (they are on every machine of this kind)")
    if not (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_CLIENT, check=True, timeout=300)
    return NODE_CLIENT


def own_open_loan() -> tuple[str, str]:
    """(borrower, one of their open cash loans) of the seeded portfolio."""
    from loan_core.portfolio import generate
    from paymesh_tools.products import RULES_OF_TYPE

    open_cash = set(open_loans(types_pb2.LOAN_TYPE_CASH))
    terms = next(t for t in generate(RULES_OF_TYPE[types_pb2.LOAN_TYPE_CASH], **PORTFOLIO) if t.loan_id in open_cash)
    return terms.borrower_id, terms.loan_id


def test_a_node_client_pays_consults_follows_and_reads_the_error_details(node_client, tmp_path, pki_dir):
    services = start_mesh(tmp_path, pki_dir, **ENV)
    try:
        borrower, app_loan = own_open_loan()
        env = {
            "PATH": os.environ["PATH"],
            "PAYMESH_ROUTER_ADDR": services["payment-router"].address,
            "PAYMESH_CONFIRMATIONS_ADDR": services["confirmations"].address,
            "PAYMESH_PKI_DIR": str(pki_dir),
            "PAYMESH_LOAN_ID": open_loans(types_pb2.LOAN_TYPE_CASH)[7],
            "PAYMESH_APP_TOKEN": mint(pki_dir, borrower, "app"),
            "PAYMESH_APP_LOAN_ID": app_loan,
            "PAYMESH_BUSINESS_DATE": AS_OF,
            # googleapis-common-protos ships the google.rpc .proto files beside its Python modules.
            "PAYMESH_GOOGLE_PROTOS": str(Path(google.rpc.__path__[0]).parent.parent),
        }
        done = subprocess.run(["node", "client.mjs"], cwd=node_client, env=env, capture_output=True, text=True,
                              timeout=120)
    finally:
        stop_mesh(services)
    assert done.returncode == 0, done.stderr + done.stdout
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["confirmed"] == 4 and len(seen["streamed"]) == 3 and seen["batch_applied"] == "2"
    assert seen["refusal"] == {"code": 5, "reason": "LOAN_NOT_FOUND", "fields": ["payment.loan_id"]}
    assert seen["app_loan"] == app_loan
