"""Revoking one certificate without a new CA: `paymesh pki --revoke` writes the mesh CA's CRL,
running servers re-read it within a second and refuse that certificate, its replacement works."""

import asyncio
import subprocess
import sys

import grpc
import pytest

from bank.loans.v1 import loan_core_service_pb2 as core_pb2, loan_core_service_pb2_grpc as core_grpc
from mainframe_bridge.framing import PING, PONG
from paymesh_tools import dev_pki
from paymesh import pki, tls
from paymesh.errors import error_info
from paymesh.topology import OPERATOR, PROBE
from tests.harness import start_service
from tests.security.support import emulator_exchange, identity_context

HANDSHAKE_REFUSED = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError)


async def get_loan(address: str, pki_dir) -> str:
    async with tls.channel_for(address, pki_dir, OPERATOR) as ch:
        try:
            await core_grpc.LoanCoreServiceStub(ch).GetLoan(core_pb2.GetLoanRequest(loan_id="CSH-000001"), timeout=5)
            return "OK"
        except grpc.aio.AioRpcError as error:
            info = error_info(error)
            return info.reason if info else error.code().name


def paymesh_pki(pki_dir, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "pki", *args], capture_output=True, text=True,
                          timeout=60, env={"PAYMESH_PKI_DIR": str(pki_dir), "PATH": "/usr/bin:/bin"})


async def test_a_revoked_certificate_is_refused_at_once_and_its_replacement_works(tmp_path):
    pki_dir = tmp_path / "pki"  # its own PKI: revoking changes certificates other tests share
    dev_pki.ensure_dev_pki(pki_dir)
    core = start_service("core-cash", tmp_path, pki_dir, PAYMESH_PORTFOLIO_SIZE="5")
    emulator = start_service("mainframe-emulator", tmp_path, pki_dir)
    try:
        assert await get_loan(core.address, pki_dir) == "OK"
        old_probe = identity_context(pki_dir, PROBE)
        assert await emulator_exchange(emulator.address, old_probe, [PING]) == [PONG]
        # The old certificate, kept as a lost device would keep it.
        old_operator = (pki.cert_path(pki_dir, OPERATOR).read_bytes(), pki.key_path(pki_dir, OPERATOR).read_bytes())

        for identity in ("ops/paymesh-cli", "ops/paymesh-probe"):
            done = paymesh_pki(pki_dir, "--revoke", identity)
            assert done.returncode == 0 and "revoked" in done.stdout, done.stdout + done.stderr
        await asyncio.sleep(1.2)  # the servers look at the list once a second

        # The replacements (issued by the same command) work...
        assert await get_loan(core.address, pki_dir) == "OK"
        assert await emulator_exchange(emulator.address, identity_context(pki_dir, PROBE), [PING]) == [PONG]
        # ...the revoked ones do not.
        kept = tmp_path / "kept"
        kept.mkdir()
        (kept / "ca.crt").write_bytes(pki.ca_path(pki_dir).read_bytes())
        pki.cert_path(kept, OPERATOR).parent.mkdir(parents=True, exist_ok=True)
        pki.cert_path(kept, OPERATOR).write_bytes(old_operator[0])
        pki.key_path(kept, OPERATOR).write_bytes(old_operator[1])
        assert await get_loan(core.address, kept) == "CALLER_NOT_ALLOWED"
        with pytest.raises(HANDSHAKE_REFUSED):
            await emulator_exchange(emulator.address, old_probe, [PING])

        # A list the mesh CA did not sign changes nothing: the last good one stays.
        pki.crl_path(pki_dir).write_bytes(b"-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n")
        await asyncio.sleep(1.2)
        assert await get_loan(core.address, kept) == "CALLER_NOT_ALLOWED"
        assert await get_loan(core.address, pki_dir) == "OK"
    finally:
        core.kill()
        emulator.kill()


def test_revoking_something_that_is_not_an_identity_is_a_clear_error(tmp_path):
    done = paymesh_pki(tmp_path / "pki", "--revoke", "channel/nobody")
    assert done.returncode == 2 and "not one of the mesh's identities" in done.stderr


async def test_an_atm_with_its_own_certificate_pays_as_the_atm_channel_and_is_revoked_alone(tmp_path):
    from bank.common.v1 import types_pb2
    from paymesh.topology import Identity
    from tests.harness import start_mesh, stop_mesh
    from tests.channel_calls import ENV, open_loans, order

    pki_dir = tmp_path / "pki"
    dev_pki.ensure_dev_pki(pki_dir)
    for device in ("atm/ATM-0042", "atm/ATM-0043"):
        done = paymesh_pki(pki_dir, "--device", device)
        assert done.returncode == 0, done.stdout + done.stderr
    assert paymesh_pki(pki_dir, "--device", "store/STORE-1").returncode == 2  # stores have no device certificates
    mesh = start_mesh(tmp_path / "mesh", pki_dir, **ENV)
    lost, other = Identity("channel", "atm", "ATM-0042"), Identity("channel", "atm", "ATM-0043")

    async def pay(identity: Identity, key: str):
        async with tls.channel_for(mesh["payment-router"].address, pki_dir, identity) as ch:
            from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc
            reply = await api_grpc.PaymentServiceStub(ch).SubmitPayment(api.SubmitPaymentRequest(
                payment=order(key, open_loans(types_pb2.LOAN_TYPE_CASH)[int(key[-1])])), timeout=10)
            return reply.payment

    try:
        paid = await pay(lost, "dev-1")
        assert (paid.channel, paid.device_id) == (types_pb2.CHANNEL_ATM, "ATM-0042")
        # The lost ATM is revoked; the ATM next to it and the channel-wide certificate go on.
        kept_cert = pki.cert_path(pki_dir, lost).read_bytes(), pki.key_path(pki_dir, lost).read_bytes()
        done = paymesh_pki(pki_dir, "--revoke", "channel/atm/ATM-0042")
        assert done.returncode == 0, done.stderr
        pki.cert_path(pki_dir, lost).write_bytes(kept_cert[0])
        pki.key_path(pki_dir, lost).write_bytes(kept_cert[1])
        await asyncio.sleep(1.2)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pay(lost, "dev-2")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await pay(other, "dev-3")).device_id == "ATM-0043"
        assert (await pay(Identity("channel", "atm"), "dev-4")).device_id == ""
    finally:
        stop_mesh(mesh)
