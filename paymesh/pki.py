"""Where a pod finds its TLS material, and reading it: one identity's key and certificate, the
mesh CA, its revocation list, the token issuer's key set and the payment id secret. Issuing all
of that for a local run is the tooling's (paymesh_tools/dev_pki.py, `paymesh pki`)."""

from dataclasses import dataclass
from pathlib import Path

from paymesh.topology import Identity


@dataclass(frozen=True)
class Material:
    """PEM bytes of one identity's key and certificate, plus the CA that vouches for it."""

    key: bytes
    cert: bytes
    ca_cert: bytes


def cert_path(pki_dir: Path, identity: Identity) -> Path:
    if identity.device:
        return pki_dir / identity.kind / identity.name / f"{identity.device}.crt"
    return pki_dir / identity.kind / f"{identity.name}.crt"


def key_path(pki_dir: Path, identity: Identity) -> Path:
    return cert_path(pki_dir, identity).with_suffix(".key")


def ca_path(pki_dir: Path) -> Path:
    return pki_dir / "ca.crt"


def load(pki_dir: Path, identity: Identity) -> Material:
    """Reads one identity's key, certificate and the CA (raises with the command to run if absent)."""
    paths = (key_path(pki_dir, identity), cert_path(pki_dir, identity), ca_path(pki_dir))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"TLS material missing ({', '.join(missing)}); run `paymesh pki` first")
    return Material(*(p.read_bytes() for p in paths))


def token_jwks_path(pki_dir: Path) -> Path:
    """The dev issuer's published key set (JWKS): the current key and the previous ones, each with a kid."""
    return pki_dir / "jwt" / "jwks.json"


def payment_id_secret_path(pki_dir: Path) -> Path:
    """The routers' shared secret that payment ids are keyed with (payment_router/orders.py)."""
    return pki_dir / "ids" / "payment-id.secret"


def crl_path(pki_dir: Path) -> Path:
    return pki_dir / "crl.pem"

