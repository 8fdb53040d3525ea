"""Live certificate rotation: every certificate on disk is renewed from the same CA while payments
flow through a real mesh; new handshakes present the new certificates, no call fails, and no
process restarts. The old certificates are then revoked, so a call still made on one would be
refused: the calls that keep succeeding show the clients present the new ones too."""

import asyncio
import datetime as dt
import socket
import ssl
from pathlib import Path

import grpc
from cryptography import x509

from bank.common.v1 import types_pb2
from bank.payments.v1 import payment_service_pb2 as api
from bank.payments.v1 import payment_service_pb2_grpc as api_grpc
from mainframe_bridge.framing import PING, PONG, encode_frame, read_frame
from mainframe_bridge.link import client_context, open_link
from paymesh import pki, tls
from paymesh.topology import BRIDGE, OPERATOR, SERVICES, Identity
from paymesh_tools import dev_pki
from tests.channel_calls import ENV, open_loans, order
from tests.harness import sample_value, scrape, start_mesh, stop_mesh

ATM = Identity("channel", "atm")


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def presented_serial(address: str, pki_dir: Path) -> int:
    """The serial of the certificate a server presents to a new TLS connection (a real handshake)."""
    context = ssl.create_default_context(cafile=str(pki.ca_path(pki_dir)))
    context.load_cert_chain(pki.cert_path(pki_dir, OPERATOR), pki.key_path(pki_dir, OPERATOR))
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as connection:
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


class Load:
    """An ATM asking what a loan owes and paying it, four at a time, until stopped: every call
    that ends in an RPC error is a failure (a core's refusal of a payment is an answer, not one)."""

    def __init__(self, router: str, pki_dir: Path):
        self.channel = tls.channel_for(router, pki_dir, ATM)
        self.stub = api_grpc.PaymentServiceStub(self.channel)
        self.loans = open_loans(types_pb2.LOAN_TYPE_CASH)
        self.calls, self.failures = 0, list[str]()
        self.running = True

    async def worker(self, number: int) -> None:
        sent = 0
        while self.running:
            loan = self.loans[(number * 31 + sent) % len(self.loans)]
            try:
                await self.stub.GetLoanDebt(api.GetLoanDebtRequest(loan_id=loan), timeout=10)
                await self.stub.SubmitPayment(api.SubmitPaymentRequest(
                    payment=order(f"rotation-{number}-{sent}", loan, amount=100)), timeout=10)
            except grpc.aio.AioRpcError as error:
                self.failures.append(f"{error.code().name}: {error.details()}")
            self.calls += 2
            sent += 1

    async def calls_made_within(self, seconds: float) -> int:
        before = self.calls
        await asyncio.sleep(seconds)
        return self.calls - before


async def test_every_certificate_renewed_under_load_is_presented_by_new_handshakes_and_no_call_fails(
        tmp_path, monkeypatch):
    pki_dir = tmp_path / "pki"  # its own PKI: the test renews and revokes every certificate
    dev_pki.ensure_dev_pki(pki_dir)
    # The old channels close a second after the renewal, not 30: the streams on them are cut and
    # reopened on the new ones within the test (with the old certificates revoked, they must be).
    monkeypatch.setattr(tls.ReloadingChannel, "RETIRE_GRACE_SECONDS", 1.0)
    mesh = start_mesh(tmp_path, pki_dir, PAYMESH_METRICS_PORT="0", PAYMESH_TLS_CHANNEL_RETIRE_SECONDS="1", **ENV)
    load = Load(mesh["payment-router"].address, pki_dir)
    workers = [asyncio.create_task(load.worker(n)) for n in range(4)]
    link_context = client_context(pki_dir, BRIDGE)  # made before the renewal, as the bridge's own is
    try:
        assert await load.calls_made_within(1.0) > 0
        old = {name: presented_serial(service.address, pki_dir) for name, service in mesh.items()}
        old_serials = [serial_of(pki.cert_path(pki_dir, identity).read_bytes())
                       for identity, _ in dev_pki.every_identity()]
        assert old["core-cash"] in old_serials

        dev_pki.renew(pki_dir, lifetime=dt.timedelta(days=20))  # every certificate, in place, under load
        new = {name: serial_of(pki.cert_path(pki_dir, SERVICES[name].identity).read_bytes()) for name in mesh}
        async with asyncio.timeout(10):
            while (presented := {n: presented_serial(s.address, pki_dir) for n, s in mesh.items()}) != new:
                await asyncio.sleep(0.2)
        assert not set(presented.values()) & set(old.values())

        # Every old certificate revoked: a call or link still made on one is refused from now on.
        await asyncio.sleep(1.5)  # every client has looked at its files again (once a second)
        dev_pki.revoke_serials(pki_dir, old_serials)
        await asyncio.sleep(1.5)  # every server has read the list again
        assert await load.calls_made_within(3.0) > 20, "payments stopped after the renewal"
        # The bridge's link takes the renewed files for its next connection (the emulator checks the list).
        reader, writer = await open_link(mesh["mainframe-emulator"].address, link_context)
        writer.write(encode_frame(PING))
        assert await asyncio.wait_for(read_frame(reader), 5) == PONG
        writer.close()

        # Each process reports its certificates' days to expiry: the renewed ones, 20 days.
        for name in ("payment-router", "core-cash"):
            port = int((tmp_path / "run" / f"{name}-metrics.port").read_text())
            expiry = scrape(port)["paymesh_tls_certificate_expiry_days"]
            days = sample_value(expiry, "paymesh_tls_certificate_expiry_days", certificate=f"service/{name}")
            assert days is not None and 19.9 < days <= 20.0, days
            assert sample_value(expiry, "paymesh_tls_certificate_expiry_days", certificate="ca") > 3000
    finally:
        load.running = False
        await asyncio.gather(*workers)
        await load.channel.close()
        # Each service drains in stages of PAYMESH_GRACE_SECONDS; on a loaded CI machine one service once
        # did not stop cleanly (which, and why, was not recorded: the assertion below now says), and
        # stop_mesh's usual 15 s before SIGKILL is the likeliest cause. Time enough for a clean stop.
        stop_mesh(mesh, timeout=40)
    assert load.failures == []
    exits = {name: service.process.returncode for name, service in mesh.items()}
    unclean = [name for name, code in exits.items() if code != 0]
    assert not unclean, f"did not stop cleanly: {exits}; " + " ".join(mesh[n].log()[-1500:] for n in unclean)
    router_log = mesh["payment-router"].log()
    assert "TLS certificate reloaded" in router_log
    # The router's stream to core-cash (the load's core) was cut with its old channel and opened again.
    assert router_log.count('"message": "stream connected", "stream": "core-cash.online"') >= 2, router_log


async def test_renewed_files_caught_half_written_are_not_taken(tmp_path):
    """cert-manager swaps a Secret's files at once; a plain rewrite (the key, then the certificate)
    can be read between the two: that reading is refused and the last good pair stays."""
    pki_dir = tmp_path / "pki"
    dev_pki.ensure_dev_pki(pki_dir)
    files = tls.CertificateFiles(pki_dir, ATM)
    files.CHECK_SECONDS = 0.0
    generation, first = files.current()
    ca = dev_pki._load_ca(pki_dir)
    assert ca is not None
    renewed = ca.issue(ATM)
    pki.key_path(pki_dir, ATM).write_bytes(renewed.key)  # the key alone: it does not match the certificate
    assert files.current() == (generation, first)
    pki.cert_path(pki_dir, ATM).write_bytes(renewed.cert)
    assert files.current() == (generation + 1, renewed)
