"""mTLS for every port: server credentials that require a client certificate from
the mesh's CA, channel credentials that present one, and the caller's identity.

gRPC's TLS stack negotiates TLS 1.2 or 1.3 only; tests/test_mtls.py shows an
older client refused.
"""

import asyncio
import functools
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
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
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 60 * 1000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)

log = logging.getLogger(__name__)


class CertificateFiles:
    """One identity's key and certificate and the mesh CA, as files renewed in place (cert-manager
    writes a new Secret into the pod's volume, `paymesh pki --renew` the dev PKI's files). current()
    looks at them at most once a second and reads them again when they changed; each reading that
    holds a matching key and certificate is a new generation. A reading caught between the key's
    write and the certificate's (they do not match) is not taken: the last good one stays.

    Thread-safe: grpc calls a server's certificate fetcher on its own threads."""

    CHECK_SECONDS = 1.0

    def __init__(self, pki_dir: Path, identity: Identity):
        self.identity = identity
        self.paths = (pki.key_path(pki_dir, identity), pki.cert_path(pki_dir, identity), pki.ca_path(pki_dir))
        self._lock = threading.Lock()
        self._material = pki.load(pki_dir, identity)  # raises with the command to run when absent
        self._stamp = self._stamps()
        self._rejected: tuple | None = None  # the stamp of a reading refused (logged once)
        self.generation = 0
        self._checked = time.monotonic()

    def current(self) -> tuple[int, pki.Material]:
        """(generation, material): the files as last read, read again if they changed."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.CHECK_SECONDS:
                self._checked = now
                self._reload()
            return self.generation, self._material

    def expiry_days(self) -> dict[str, float]:
        """Days until the certificate and the CA as last read expire, by the certificate label."""
        material = self.current()[1]
        now = time.time()
        return {label: (x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp() - now) / 86400
                for label, pem in ((f"{self.identity.kind}/{self.identity.name}", material.cert),
                                   ("ca", material.ca_cert))}

    def _stamps(self) -> tuple:
        try:  # stat follows the symlinks of a Kubernetes Secret volume, swapped at once on renewal
            return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in (p.stat() for p in self.paths))
        except FileNotFoundError:
            return ()

    def _reload(self) -> None:
        stamp = self._stamps()
        if not stamp or stamp == self._stamp or stamp == self._rejected:
            return
        try:
            material = pki.Material(*(p.read_bytes() for p in self.paths))
            _check_pair(material)
        except (OSError, ValueError) as bad:
            self._rejected = stamp
            log.warning("renewed TLS files not taken; the previous ones stay",
                        extra={"certificate": str(self.identity), "error": str(bad)[:200]})
            return
        self._material, self._stamp, self.generation = material, stamp, self.generation + 1
        log.info("TLS certificate reloaded", extra={"certificate": str(self.identity), "generation": self.generation,
                                                    "not_after": str(_not_after(material.cert))})


def _check_pair(material: pki.Material) -> None:
    """Raises ValueError unless the key is the certificate's and both the certificate and CA parse."""
    cert = x509.load_pem_x509_certificate(material.cert)
    x509.load_pem_x509_certificate(material.ca_cert)
    key = serialization.load_pem_private_key(material.key, password=None)
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != cert.public_key().public_bytes(*public):
        raise ValueError("the key does not belong to the certificate (one of them is still being written?)")


def _not_after(cert_pem: bytes):
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def _certificate_configuration(material: pki.Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(material.key, material.cert)],
                                                     root_certificates=material.ca_cert)


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """Credentials that follow files: grpc asks the fetcher before every new connection's handshake
    (on its own thread), and it answers the material read since, or None to keep what it has.
    Connections already open keep the certificate they were made with."""
    generation, material = files.current()
    served = [generation]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        generation, material = files.current()
        if generation == served[0]:
            return None
        served[0] = generation
        return _certificate_configuration(material)

    # The stub types the fetcher as never answering None; grpc documents None as "no change".
    fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], fetch)
    return grpc.dynamic_ssl_server_credentials(_certificate_configuration(material), fetcher,
                                               require_client_authentication=True)


def channel_credentials(material: pki.Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_cert, private_key=material.key, certificate_chain=material.cert
    )


# For a target of several addresses: round robin over those whose health (grpc.health.v1, the
# whole server: "") says SERVING, watched by gRPC itself (client-side health checking).
_HEALTH_CHECKED = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})


def dialled(target: str) -> tuple[str, tuple]:
    """The target as gRPC dials it, and the channel's options. One address (host:port, or a name
    DNS or a Kubernetes Service resolves): as it is. Several, comma separated, as an active service and
    its standbys on one machine are (`127.0.0.1:50061,127.0.0.1:50071`): gRPC's `ipv4:` list, calls
    going only to the ones whose health says SERVING (a standby's NOT_SERVING: to the lease holder,
    and to the new one after a takeover); the certificate is checked against the first address, which
    the services' certificates carry. Only for several addresses: a single service that is
    NOT_SERVING (a core waiting for its loans) must stay reachable, by the operator's import."""
    addresses = [part.strip() for part in target.split(",") if part.strip()]
    if len(addresses) < 2:
        return target, CHANNEL_OPTIONS
    host = addresses[0].rsplit(":", 1)[0].strip("[]")
    options = tuple(option for option in CHANNEL_OPTIONS if option[0] != "grpc.lb_policy_name")
    return f"ipv4:{','.join(addresses)}", (*options, ("grpc.service_config", _HEALTH_CHECKED),
                                          ("grpc.ssl_target_name_override", host))


def secure_channel(target: str, material: pki.Material, interceptors=None) -> grpc.aio.Channel:
    """An mTLS channel on material as it is (it never changes): tests presenting a kept certificate.
    target: one address, or several comma separated (dialled())."""
    dial, options = dialled(target)
    return grpc.aio.secure_channel(dial, channel_credentials(material), options=options, interceptors=interceptors)


def channel_for(target: str, pki_dir: Path, identity: Identity, interceptors=None) -> grpc.aio.Channel:
    """An mTLS channel to target, presenting identity's certificate, renewed files included."""
    return ReloadingChannel(target, CertificateFiles(pki_dir, identity), interceptors)


class ReloadingChannel(grpc.aio.Channel):
    """A channel that follows its certificate files. grpcio (1.85) has no client credentials that
    reload (only servers have a certificate fetcher), so once the files change, calls started from
    then on go on a new channel (new connections: the new certificate); the old channel is closed
    after RETIRE_GRACE_SECONDS, so what runs on it may finish (a long-lived stream cut then is
    reopened by its caller, on the new channel). Stubs are made on it as on any channel."""

    # PAYMESH_TLS_CHANNEL_RETIRE_SECONDS: how long calls on the old channel may go on.
    RETIRE_GRACE_SECONDS = float(os.environ.get("PAYMESH_TLS_CHANNEL_RETIRE_SECONDS", "").strip() or 30)

    def __init__(self, target: str, files: CertificateFiles, interceptors=None):
        self._target, self._files, self._interceptors = target, files, interceptors
        self._generation, material = files.current()
        self._channel = secure_channel(target, material, interceptors)
        self._retiring: dict[asyncio.Task, grpc.aio.Channel] = {}  # old channels, each closing after the grace

    def current(self) -> grpc.aio.Channel:
        """The channel on the newest certificate files (a new one when they changed)."""
        generation, material = self._files.current()
        if generation != self._generation:
            old, self._generation = self._channel, generation
            self._channel = secure_channel(self._target, material, self._interceptors)
            retire = asyncio.get_running_loop().create_task(old.close(self.RETIRE_GRACE_SECONDS))
            self._retiring[retire] = old
            retire.add_done_callback(lambda task: self._retiring.pop(task, None))
            log.info("channel renewed with the renewed certificate", extra={"target": self._target})
        return self._channel

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _FollowingCallable(self, "unary_unary", method, request_serializer, response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _FollowingCallable(self, "unary_stream", method, request_serializer, response_deserializer)

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _FollowingCallable(self, "stream_unary", method, request_serializer, response_deserializer)

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _FollowingCallable(self, "stream_stream", method, request_serializer, response_deserializer)

    async def close(self, grace: float | None = None) -> None:
        retiring = dict(self._retiring)
        for task in retiring:  # the old channels close now, with this grace
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        await asyncio.gather(*(channel.close(grace) for channel in (*retiring.values(), self._channel)))

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        await self.close()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()


class _FollowingCallable:
    """A stub's method on a ReloadingChannel: each call goes on the channel current when it starts."""

    def __init__(self, owner: ReloadingChannel, kind: str, method: str, request_serializer, response_deserializer):
        self._owner, self._kind, self._method = owner, kind, method
        self._serializers = dict(request_serializer=request_serializer, response_deserializer=response_deserializer)
        self._on: grpc.aio.Channel | None = None
        self._callable = None

    def __call__(self, *args, **kwargs):
        channel = self._owner.current()
        if channel is not self._on:
            self._callable = getattr(channel, self._kind)(self._method, _registered_method=True, **self._serializers)
            self._on = channel
        return self._callable(*args, **kwargs)


class ReloadingSSLContext(ssl.SSLContext):
    """A Python ssl context (the mainframe link, both ends) that follows its certificate files:
    refresh() loads the renewed key and certificate into it (load_cert_chain replaces them), so
    connections made after present the new certificate; those open keep theirs. The CA is loaded
    again too (added to the trust store: renewal from the same CA changes nothing there)."""

    files: CertificateFiles
    loaded: int

    def follow(self, files: CertificateFiles) -> "ReloadingSSLContext":
        self.files, self.loaded = files, -1
        self.minimum_version = ssl.TLSVersion.TLSv1_2
        self.refresh()
        return self

    def refresh(self) -> None:
        generation, material = self.files.current()
        if generation == self.loaded:
            return
        key, cert, _ca = self.files.paths
        try:
            self.load_verify_locations(cadata=material.ca_cert.decode())
            # ssl loads a key pair from files only: a pair being rewritten is refused (a mismatch) and retried.
            self.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as bad:
            log.warning("TLS files not loaded into the link's context", extra={"error": str(bad)[:200]})
            return
        self.loaded = generation


def ssl_client_context(pki_dir: Path, identity: Identity) -> ReloadingSSLContext:
    """The client side of a plain TLS link (the mainframe's), with identity's certificate."""
    context = ReloadingSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = True, ssl.CERT_REQUIRED
    return context.follow(CertificateFiles(pki_dir, identity))


def ssl_server_context(pki_dir: Path, identity: Identity) -> ReloadingSSLContext:
    """The server side of a plain TLS link: a client certificate from the mesh CA is required."""
    context = ReloadingSSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    return context.follow(CertificateFiles(pki_dir, identity))


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
