"""The dev PKI: one CA, a certificate per service, per router bulkhead, per channel and per
operator identity, the dev token issuer, the payment id secret and the revocation list.

`paymesh pki` writes them under $PAYMESH_PKI_DIR (ignored by git). Running it
again keeps what is valid, so a running mesh is never pulled from under its feet;
it only issues what is missing or expires within RENEW_BEFORE. (Pods only read them: paymesh/pki.py.)
"""

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from paymesh.pki import Material, ca_path, cert_path, crl_path, key_path, payment_id_secret_path, token_jwks_path
from paymesh.topology import CHANNELS, OPERATORS, ROUTER_BULKHEADS, SERVICES, TRUST_DOMAIN, Identity, router_identity

CA_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
K8S_NAMESPACE = "paymesh"


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str = "paymesh dev CA", lifetime: dt.timedelta = CA_LIFETIME):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self,
        identity: Identity,
        dns_names: tuple[str, ...] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Material:
        """A leaf certificate carrying the identity as its SPIFFE URI SAN.

        Service certificates (with dns_names) serve and call; the others only call.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - dt.timedelta(minutes=5)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe_id)]
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if dns_names:
            sans += [x509.DNSName(n) for n in dns_names]
            sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(not_after or start + LEAF_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return Material(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM), self.cert_pem)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def service_dns_names(service: str) -> tuple[str, ...]:
    """localhost plus the names Kubernetes gives the service (and its headless pods)."""
    base = f"{service}.{K8S_NAMESPACE}"
    return ("localhost", service, base, f"{base}.svc", f"{base}.svc.cluster.local",
            f"*.{base}.svc.cluster.local")


def every_identity() -> list[tuple[Identity, tuple[str, ...]]]:
    services = [(spec.identity, service_dns_names(spec.name)) for spec in SERVICES.values()]
    bulkheads = [router_identity(bulkhead) for bulkhead in ROUTER_BULKHEADS]
    services += [(router, service_dns_names(router.name)) for router in bulkheads]
    channels = [(Identity("channel", name), ()) for name in CHANNELS]
    return services + channels + [(operator, ()) for operator in OPERATORS]


def issue_device(pki_dir: Path, identity: Identity) -> Path:
    """A certificate of a device's own (channel/atm/ATM-0042), from the dev CA; its path."""
    ensure_dev_pki(pki_dir)
    ca = _load_ca(pki_dir)
    assert ca is not None, "ensure_dev_pki just made sure of a valid CA"
    material = ca.issue(identity)
    _write(key_path(pki_dir, identity), material.key, secret=True)
    _write(cert_path(pki_dir, identity), material.cert)
    return cert_path(pki_dir, identity)


def token_signing_key_path(pki_dir: Path) -> Path:
    """The dev identity provider's current ES256 key for end-user JWTs (digital channels)."""
    return pki_dir / "jwt" / "dev-issuer.key"


def token_public_key_path(pki_dir: Path) -> Path:
    """The current key's public half (PEM), for PAYMESH_JWT_PUBLIC_KEYS and the dev Kubernetes overlay."""
    return pki_dir / "jwt" / "dev-issuer.pub"


TOKEN_KEYS_KEPT = 3  # the current dev issuer key and two previous ones stay in the JWKS after a rotation


def token_key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The key's `kid`: its RFC 7638 JWK thumbprint (SHA-256, base64url), the same wherever it is computed."""
    return _public_jwk(key)["kid"]


def token_signing_key(pki_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The dev issuer's current signing key and its kid."""
    path = token_signing_key_path(pki_dir)
    if not path.exists():
        raise FileNotFoundError(f"the dev token issuer's key is missing ({path}); run `paymesh pki` first")
    # The key rotate_token_signing_key wrote: EC P-256 (ES256).
    key = cast(ec.EllipticCurvePrivateKey, serialization.load_pem_private_key(path.read_bytes(), password=None))
    return key, token_key_id(key)


def rotate_token_signing_key(pki_dir: Path, keep: int = TOKEN_KEYS_KEPT) -> str:
    """A new dev issuer key: published in the JWKS first (with the `keep` - 1 previous keys, so tokens
    they signed stay valid until they expire), then made the signing key. Returns the new kid."""
    key = ec.generate_private_key(ec.SECP256R1())
    previous = [k for k in _published_token_keys(pki_dir) if k.get("kid") != token_key_id(key)]
    _write_jwks(pki_dir, [_public_jwk(key)] + previous[: max(keep - 1, 0)])
    _write_token_key(pki_dir, key)
    return token_key_id(key)


def _ensure_token_issuer(pki_dir: Path) -> list[Path]:
    """The dev issuer's signing key, its public key and a JWKS that publishes it; what it wrote."""
    written: list[Path] = []
    if not (token_signing_key_path(pki_dir).exists() and token_public_key_path(pki_dir).exists()):
        _write_token_key(pki_dir, ec.generate_private_key(ec.SECP256R1()))
        written.append(token_public_key_path(pki_dir))
    key, kid = token_signing_key(pki_dir)
    published = _published_token_keys(pki_dir)
    if kid not in {k.get("kid") for k in published}:
        # a PKI from before the JWKS existed, or a lost file: publish the current key (keep the others)
        _write_jwks(pki_dir, [_public_jwk(key)] + published[: TOKEN_KEYS_KEPT - 1])
        written.append(token_jwks_path(pki_dir))
    return written


def _write_token_key(pki_dir: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write(token_signing_key_path(pki_dir), _key_pem(key), secret=True)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(token_public_key_path(pki_dir), public)


def _public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    numbers = public.public_numbers()
    coordinate = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
    jwk = {"kty": "EC", "crv": "P-256", "x": coordinate(numbers.x), "y": coordinate(numbers.y)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


def _published_token_keys(pki_dir: Path) -> list[dict]:
    path = token_jwks_path(pki_dir)
    try:
        keys = json.loads(path.read_text()).get("keys", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [k for k in keys if isinstance(k, dict)]


def _write_jwks(pki_dir: Path, keys: list[dict]) -> None:
    _write(token_jwks_path(pki_dir), (json.dumps({"keys": keys}, indent=2) + "\n").encode())


def ensure_dev_pki(pki_dir: Path) -> list[Path]:
    """Creates the CA, every certificate that is missing or near expiry, and the dev
    token issuer (signing key and JWKS); returns what it wrote."""
    written = _ensure_token_issuer(pki_dir)
    if not payment_id_secret_path(pki_dir).exists():
        _write(payment_id_secret_path(pki_dir), secrets.token_hex(32).encode(), secret=True)
        written.append(payment_id_secret_path(pki_dir))
    ca = _load_ca(pki_dir)
    if ca is None:
        ca = CertificateAuthority.create()
        _write(pki_dir / "ca.key", _key_pem(ca.key), secret=True)
        _write(ca_path(pki_dir), ca.cert_pem)
        written.append(ca_path(pki_dir))
    for identity, dns_names in every_identity():
        if _still_good(cert_path(pki_dir, identity), ca):
            continue
        material = ca.issue(identity, dns_names)
        _write(key_path(pki_dir, identity), material.key, secret=True)
        _write(cert_path(pki_dir, identity), material.cert)
        written.append(cert_path(pki_dir, identity))
    return written


def renew(pki_dir: Path, lifetime: dt.timedelta = LEAF_LIFETIME) -> list[Path]:
    """Issues every identity a new key and certificate from the same CA, in place, as cert-manager
    renews a Secret: running services take them for their new connections (paymesh/tls.py). The
    key is written before the certificate; a reader between the two sees a pair that does not match
    and keeps its last good one. Returns the certificates written."""
    ensure_dev_pki(pki_dir)
    ca = _load_ca(pki_dir)
    assert ca is not None, "ensure_dev_pki just made sure of a valid CA"
    written = []
    for identity, dns_names in every_identity():
        start = _now() - dt.timedelta(minutes=5)
        material = ca.issue(identity, dns_names, not_before=start, not_after=start + lifetime)
        _write(key_path(pki_dir, identity), material.key, secret=True)
        _write(cert_path(pki_dir, identity), material.cert)
        written.append(cert_path(pki_dir, identity))
    return written


def revoke(pki_dir: Path, identity: Identity) -> int:
    """Adds identity's current certificate to the dev CA's revocation list (crl.pem, which every
    server re-reads) and removes it, so the next ensure_dev_pki issues a new one; its serial."""
    cert = x509.load_pem_x509_certificate(cert_path(pki_dir, identity).read_bytes())
    revoke_serials(pki_dir, [cert.serial_number])
    cert_path(pki_dir, identity).unlink()
    return cert.serial_number


def revoke_serials(pki_dir: Path, serials: list[int]) -> None:
    """Adds the certificates of these serial numbers to the dev CA's revocation list (crl.pem)."""
    ca = _load_ca(pki_dir)
    assert ca is not None, "revoking needs a valid dev CA (`paymesh pki` makes or renews it)"
    now = _now()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
               .last_update(now).next_update(now + dt.timedelta(days=7)))
    revoked = list(serials)
    if crl_path(pki_dir).exists():
        revoked += [r.serial_number for r in x509.load_pem_x509_crl(crl_path(pki_dir).read_bytes())]
    for serial in sorted(set(revoked)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    _write(crl_path(pki_dir), builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def _load_ca(pki_dir: Path) -> CertificateAuthority | None:
    key_file, cert_file = pki_dir / "ca.key", ca_path(pki_dir)
    if not (key_file.exists() and cert_file.exists()):
        return None
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return None
    # The key CertificateAuthority.create made and ensure_dev_pki wrote: EC P-256.
    key = cast(ec.EllipticCurvePrivateKey, serialization.load_pem_private_key(key_file.read_bytes(), password=None))
    return CertificateAuthority(key, cert)


def _still_good(path: Path, ca: CertificateAuthority) -> bool:
    if not path.exists() or not path.with_suffix(".key").exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.issuer == ca.cert.subject and cert.not_valid_after_utc - RENEW_BEFORE > _now() and (
        _verifies(cert, ca)
    )


def _verifies(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    try:
        cert.verify_directly_issued_by(ca.cert)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    """Atomic replace, so a process starting meanwhile reads the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    # Certificate validity is an instant, which X.509 writes in UTC: no business date is involved.
    return dt.datetime.now(dt.UTC)


def _identity_argument(text: str) -> Identity:
    import argparse

    identity = Identity.parse(f"spiffe://{TRUST_DOMAIN}/{text}")
    if identity is None or identity not in {i for i, _ in every_identity()}:  # a device is its channel
        raise argparse.ArgumentTypeError(f"{text!r} is not one of the mesh's identities (e.g. channel/atm)")
    return identity


def add_arguments(parser) -> None:
    parser.add_argument("--revoke", metavar="KIND/NAME", type=_identity_argument,
                        help="revoke an identity's certificate (e.g. channel/atm, or a device's: "
                             "channel/atm/ATM-0042) and issue it a new one")
    parser.add_argument("--device", metavar="CHANNEL/DEVICE", type=lambda t: _identity_argument(f"channel/{t}"),
                        help="issue a device its own certificate, e.g. atm/ATM-0042 (atm and agent devices)")
    parser.add_argument("--renew", action="store_true",
                        help="issue every identity a new key and certificate from the same CA, in place "
                             "(running services take them without a restart)")
    parser.add_argument("--rotate-token-key", action="store_true",
                        help="give the dev token issuer a new signing key (published in jwt/jwks.json first; "
                             f"the {TOKEN_KEYS_KEPT - 1} previous keys stay published)")


def run(args) -> int:
    from paymesh.config import Settings

    settings = Settings.from_env()
    if getattr(args, "device", None):
        if not args.device.device:
            print("--device wants CHANNEL/DEVICE, e.g. atm/ATM-0042 (atm and agent only)")
            return 2
        print(f"issued {args.device}: {issue_device(settings.pki_dir, args.device)}")
    if getattr(args, "revoke", None):
        serial = revoke(settings.pki_dir, args.revoke)
        print(f"revoked {args.revoke} (serial {serial:x}) in {crl_path(settings.pki_dir)}; "
              "servers refuse it within a second")
    written = renew(settings.pki_dir) if getattr(args, "renew", False) else ensure_dev_pki(settings.pki_dir)
    if getattr(args, "rotate_token_key", False):
        kid = rotate_token_signing_key(settings.pki_dir)
        print(f"dev token issuer: new signing key {kid} published in {token_jwks_path(settings.pki_dir)}")
    print(f"{len(written)} certificates written under {settings.pki_dir}" if written
          else f"dev PKI under {settings.pki_dir} is complete and valid; nothing written")
    return 0

