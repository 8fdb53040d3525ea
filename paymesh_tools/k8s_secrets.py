"""`paymesh k8s-secrets`: the dev overlay's TLS material, from the dev PKI.

Writes, under --out (default k8s/overlays/dev/pki, ignored by git), one folder per
service with the files cert-manager would put in its Secret (tls.crt, tls.key,
ca.crt), otlp-client/ (the same, for the OpenTelemetry Collector's client), and
jwt/issuer.pub (the dev token issuer's public key). The dev overlay's
secretGenerator reads them, so `kubectl apply -k k8s/overlays/dev` ships Secrets of
the same shape as prod's cert-manager ones, and nothing secret is ever committed.
"""

from pathlib import Path

from paymesh_tools import dev_pki
from paymesh import pki
from paymesh.config import Settings
from paymesh.topology import ROUTER, ROUTER_BULKHEADS, SERVICES, Identity, router_identity

DEFAULT_OUT = Path("k8s/overlays/dev/pki")
OTLP_EXPORTER = Identity("service", "otlp-exporter")


def write_dev_secrets(pki_dir: Path, out: Path) -> list[Path]:
    """Ensures the dev PKI, then copies each service's material into out; returns the files written."""
    dev_pki.ensure_dev_pki(pki_dir)
    written = []
    # Each service's identity; the router's are its bulkheads' (the local mesh's one router has no pod).
    identities = [spec.identity for spec in SERVICES.values() if spec.identity != ROUTER]
    for identity in identities + [router_identity(bulkhead) for bulkhead in ROUTER_BULKHEADS]:
        material = pki.load(pki_dir, identity)
        folder = out / identity.name
        for name, data, secret in (("tls.crt", material.cert, False), ("tls.key", material.key, True),
                                   ("ca.crt", material.ca_cert, False)):
            written.append(_write(folder / name, data, secret))
    # The OpenTelemetry Collector's client (k8s/components/otel-collector): an identity of its own, which no
    # mesh server admits, issued here rather than kept in the local PKI (a local run exports to no collector).
    ca = dev_pki._load_ca(pki_dir)
    assert ca is not None, "ensure_dev_pki made the CA"
    exporter = ca.issue(OTLP_EXPORTER)
    for name, data, secret in (("tls.crt", exporter.cert, False), ("tls.key", exporter.key, True),
                               ("ca.crt", exporter.ca_cert, False)):
        written.append(_write(out / "otlp-client" / name, data, secret))
    written.append(_write(out / "jwt" / "jwks.json", pki.token_jwks_path(pki_dir).read_bytes(), False))
    written.append(_write(out / "ids" / "payment-id.secret", pki.payment_id_secret_path(pki_dir).read_bytes(), True))
    return written


def _write(path: Path, data: bytes, secret: bool) -> Path:
    dev_pki._write(path, data, secret=secret)  # atomic, 0600 for keys: the PKI's own writer
    return path


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where the dev overlay reads them (default {DEFAULT_OUT})")


def run(args) -> int:
    settings = Settings.from_env()
    written = write_dev_secrets(settings.pki_dir, args.out)
    print(f"{len(written)} files for the dev overlay's Secrets under {args.out} (from {settings.pki_dir}); "
          "then: kubectl apply -k k8s/overlays/dev")
    return 0
