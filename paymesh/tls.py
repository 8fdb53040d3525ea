"""mTLS for every port: server credentials that require a client certificate from
the mesh's CA, channel credentials that present one, and the caller's identity.

gRPC's TLS stack negotiates TLS 1.2 or 1.3 only; tests/test_mtls.py shows an
older client refused.
"""

import functools
import logging
import os
import time
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from paymesh import pki
from paymesh.topology import Identity

# Streams live long; keepalives find a dead peer, and a bounded connection age
# (on servers) lets load spread again across replicas. A client pings every 20 s at the
# soonest, twice the servers' minimum below, so it is never taken for a flood
# (docs/load-and-security.md, connection rules).
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    # Per-call balancing over every address a name resolves to (a headless Kubernetes Service
    # gives one per pod); with one address, as in a local run, it is the same as pick_first.
    ("grpc.lb_policy_name", "round_robin"),
)
SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # A ping sooner than 10 s after the last, with no data sent in between, is a strike; the third
    # strike is answered GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and the connection closed.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    # Idle clients' keepalives are judged by the 10 s above, not gRPC's 2 h for a connection without calls.
    ("grpc.keepalive_permit_without_calls", 1),
    # Streams at once on one connection: above what one caller may hold on either server (200
    # Subscribe, or 100 StreamPayments and 4 UploadBatch) with its unary calls in flight (500/s
    # online at a 1 s p50 on a loaded machine is 500), so the per-caller limits answer first. A
    # stream counts until gRPC has freed it (a reset one too), so a client near the limit is refused
    # UNAVAILABLE (RST_STREAM REFUSED_STREAM): at 256, make bench's online phase was.
    ("grpc.max_concurrent_streams", 1024),
    ("grpc.max_connection_age_ms", 30 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 60 * 1000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


def server_credentials(material: pki.Material) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)], root_certificates=material.ca_cert, require_client_auth=True
    )


def channel_credentials(material: pki.Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_cert, private_key=material.key, certificate_chain=material.cert
    )


def secure_channel(target: str, material: pki.Material, interceptors=None) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        target, channel_credentials(material), options=CHANNEL_OPTIONS, interceptors=interceptors
    )


def channel_for(target: str, pki_dir: Path, identity: Identity, interceptors=None) -> grpc.aio.Channel:
    """An mTLS channel to target, presenting identity's certificate."""
    return secure_channel(target, pki.load(pki_dir, identity), interceptors)


log = logging.getLogger(__name__)


class RevocationList:
    """The mesh CA's certificate revocation list (PAYMESH_CRL_FILE, default $PAYMESH_PKI_DIR/crl.pem),
    re-read when the file changes (looked at once a second at most): a lost ATM's or a leaked
    service's certificate stops working without a new CA. Only a CRL the mesh CA signed counts."""

    CHECK_SECONDS = 1.0

    def __init__(self, path: Path, ca_pem: bytes):
        self.path, self._ca = path, x509.load_pem_x509_certificate(ca_pem)
        self._serials: frozenset[int] = frozenset()
        self._seen: float | None = None  # the file's mtime as last read
        self._checked = 0.0

    @classmethod
    def from_env(cls, pki_dir: Path) -> "RevocationList":
        path = Path(os.environ.get("PAYMESH_CRL_FILE") or pki_dir / "crl.pem")
        return cls(path, pki.ca_path(pki_dir).read_bytes())

    def is_revoked(self, serial: int) -> bool:
        now = time.monotonic()
        if now - self._checked >= self.CHECK_SECONDS:
            self._checked = now
            self._reload()
        return serial in self._serials

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._serials, self._seen = frozenset(), None
            return
        if mtime == self._seen:
            return
        try:
            crl = x509.load_pem_x509_crl(self.path.read_bytes())
            # A CA certificate's key is one that signs (never X25519 or X448); the stub types every kind of key.
            ca_key = cast(CertificateIssuerPublicKeyTypes, self._ca.public_key())
            if not crl.is_signature_valid(ca_key):
                raise ValueError("not signed by the mesh CA")
        except ValueError as bad:  # keep the last good list: a broken file must not un-revoke anything
            log.error("certificate revocation list not loaded; the previous one stays", extra={"error": str(bad)})
            return
        self._serials, self._seen = frozenset(r.serial_number for r in crl), mtime
        log.info("certificate revocation list loaded", extra={"revoked": len(self._serials)})


_revocations: RevocationList | None = None


def check_revocations(revocations: RevocationList | None) -> None:
    """Makes peer_identity refuse the certificates this list revokes (a server calls it at start)."""
    global _revocations
    _revocations = revocations


def peer_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """The caller's identity from the SPIFFE URI SAN of its verified certificate; None for a
    certificate the mesh CA revoked."""
    auth = context.auth_context()
    pem = next(iter(auth.get("x509_pem_cert") or ()), b"")  # an iterable of bytes per property
    if not pem:
        return None
    identity, serial = _identity_and_serial(pem)
    if identity is not None and _revocations is not None and _revocations.is_revoked(serial):
        return None
    return identity


def identity_from_pem(pem: bytes) -> Identity | None:
    return _identity_and_serial(pem)[0]


@functools.lru_cache(maxsize=1024)
def _identity_and_serial(pem: bytes) -> tuple[Identity | None, int]:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None, 0
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    identities = [i for i in map(Identity.parse, uris) if i is not None]
    # A certificate naming two identities names none we can trust.
    return (identities[0] if len(identities) == 1 else None), cert.serial_number
