"""The dev PKI command: complete, SPIFFE identities, idempotent, private keys private."""

import datetime as dt
import stat

from cryptography import x509

from paymesh_tools import dev_pki
from paymesh import pki
from paymesh.topology import CHANNELS, OPERATOR, SERVICES, Identity


def test_creates_a_certificate_for_every_service_channel_and_the_operator(tmp_path):
    dev_pki.ensure_dev_pki(tmp_path)
    identities = [spec.identity for spec in SERVICES.values()] + [Identity("channel", c) for c in CHANNELS]
    for identity in identities + [OPERATOR]:
        cert = x509.load_pem_x509_certificate(pki.cert_path(tmp_path, identity).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [identity.spiffe_id]
        assert stat.S_IMODE(pki.key_path(tmp_path, identity).stat().st_mode) == 0o600
    router = x509.load_pem_x509_certificate(pki.cert_path(tmp_path, SERVICES["payment-router"].identity).read_bytes())
    dns = router.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {"localhost", "payment-router.paymesh.svc.cluster.local"} <= set(dns)


def test_running_it_again_changes_nothing(tmp_path):
    dev_pki.ensure_dev_pki(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert dev_pki.ensure_dev_pki(tmp_path) == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_missing_or_expiring_certificate_is_issued_again(tmp_path):
    dev_pki.ensure_dev_pki(tmp_path)
    atm = Identity("channel", "atm")
    pki.cert_path(tmp_path, atm).unlink()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    expiring = dev_pki._load_ca(tmp_path).issue(Identity("channel", "app"), not_after=soon)
    pki.cert_path(tmp_path, Identity("channel", "app")).write_bytes(expiring.cert)
    written = dev_pki.ensure_dev_pki(tmp_path)
    assert sorted(written) == sorted([pki.cert_path(tmp_path, atm),
                                      pki.cert_path(tmp_path, Identity("channel", "app"))])


def test_renew_reissues_every_certificate_from_the_same_ca_and_a_later_run_keeps_them(tmp_path):
    import subprocess
    import sys

    dev_pki.ensure_dev_pki(tmp_path)
    ca_before = pki.ca_path(tmp_path).read_bytes()
    every = [identity for identity, _ in dev_pki.every_identity()]
    serials = {i: x509.load_pem_x509_certificate(pki.cert_path(tmp_path, i).read_bytes()).serial_number for i in every}
    done = subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "pki", "--renew"], capture_output=True,
                          text=True, timeout=60, env={"PAYMESH_PKI_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and f"{len(every)} certificates written" in done.stdout, done.stdout + done.stderr
    assert pki.ca_path(tmp_path).read_bytes() == ca_before
    for identity in every:
        renewed = pki.load(tmp_path, identity)
        cert = x509.load_pem_x509_certificate(renewed.cert)
        assert cert.serial_number != serials[identity]
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
    assert dev_pki.ensure_dev_pki(tmp_path) == []  # what --renew wrote is valid: kept
