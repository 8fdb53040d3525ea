"""End-user tokens of the digital channels: JWTs checked with PyJWT.

What a token must be to be accepted (`TokenVerifier.customer_of`):

- signed with ES256 (the algorithm is pinned: `none`, HMAC and every other algorithm are refused),
  by a key the issuer publishes in its key set (JWKS), chosen by the token's `kid`;
- issued by PAYMESH_JWT_ISSUER, for the audience of the channel it is sent on (one audience per digital
  channel, so an app token is refused on internet banking and the other way round);
- with `iss`, `aud`, `sub`, `iat` and `exp`; `exp` - `iat` at most PAYMESH_JWT_MAX_LIFETIME_SECONDS;
  not expired, not issued in the future, not before its `nbf`, each within PAYMESH_JWT_LEEWAY_SECONDS.

The key set (PAYMESH_JWT_JWKS, a file or an https URL; the dev issuer's `jwt/jwks.json` by default) is
read again when the file changes, or every PAYMESH_JWT_JWKS_REFRESH_SECONDS from a URL, so the issuer
rotates its keys without a router restart. PAYMESH_JWT_PUBLIC_KEYS (PEM files, comma-separated) is the
older form: keys without a kid, each tried in turn, read again when a file changes.

`paymesh token` (paymesh_tools/dev_tokens.py) mints dev tokens with the dev issuer's current key.
"""

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from paymesh import pki
from paymesh.config import Settings

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
DEFAULT_ISSUER = "https://login.paymesh.bank"
# The digital channels (the certificate's channel name) and the audience each one's tokens must carry.
DEFAULT_AUDIENCES = {"app": "paymesh-app", "internet-banking": "paymesh-internet-banking"}
DIGITAL_CHANNELS = tuple(DEFAULT_AUDIENCES)
DEFAULT_AUDIENCE = DEFAULT_AUDIENCES["app"]  # kept for importers of the one-audience days: the app's
DEFAULT_MAX_LIFETIME_SECONDS = 3600
DEFAULT_LEEWAY_SECONDS = 5
MAX_LEEWAY_SECONDS = 300
DEFAULT_JWKS_REFRESH_SECONDS = 300
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp")
MAX_TOKEN_CHARS = 8192
MAX_SUBJECT_CHARS = 128
# Names an attacker may put in a token's `alg` that are safe to repeat in a refusal (anything else is not).
_KNOWN_ALGORITHMS = {"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                     "ES384", "ES512", "ES256K", "EdDSA"}


class TokenRefused(Exception):
    """A missing, malformed, expired or untrusted token; the message says which (never the token)."""


# The variable that sets each digital channel's audience (named in full: the manifests' test looks for them).
AUDIENCE_VARIABLES = {"app": "PAYMESH_JWT_AUDIENCE_APP", "internet-banking": "PAYMESH_JWT_AUDIENCE_INTERNET_BANKING"}


def audience_env(channel: str) -> str:
    return AUDIENCE_VARIABLES[channel]


def audience_of(channel: str) -> str:
    """The audience a digital channel's tokens must carry."""
    configured = {"app": os.environ.get("PAYMESH_JWT_AUDIENCE_APP"),
                  "internet-banking": os.environ.get("PAYMESH_JWT_AUDIENCE_INTERNET_BANKING")}[channel]
    return configured or DEFAULT_AUDIENCES[channel]


def audiences_from_env() -> dict[str, str]:
    if os.environ.get("PAYMESH_JWT_AUDIENCE"):
        # Not fatal: a router that would not start would stop every channel, not only the digital ones.
        log.error("PAYMESH_JWT_AUDIENCE (one audience for every digital channel) is no longer read; tokens "
                  "must carry their channel's audience: set %s",
                  " and ".join(audience_env(c) for c in DIGITAL_CHANNELS))
    audiences = {c: audience_of(c) for c in DIGITAL_CHANNELS}
    if len(set(audiences.values())) != len(audiences):
        raise ValueError(f"each digital channel needs its own token audience, got {audiences}")
    return audiences


def issuer_from_env() -> str:
    return os.environ.get("PAYMESH_JWT_ISSUER") or DEFAULT_ISSUER


def _number_from_env(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} seconds, got {raw!r}")
    return value


# --- the keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationKey:
    kid: str | None  # None: a PEM key of PAYMESH_JWT_PUBLIC_KEYS, tried for any token
    key: ec.EllipticCurvePublicKey


def keys_from_jwks(data: dict | str | bytes) -> list[VerificationKey]:
    """The ES256 (P-256) signing keys of a JWKS, each with its kid; other keys are left out."""
    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    if not isinstance(data, dict):
        raise ValueError("a key set (JWKS) is a JSON object with a 'keys' list")
    keys = []
    for jwk in jwt.PyJWKSet.from_dict(data).keys:
        if jwk.algorithm_name != ALGORITHM or not jwk.key_id or (jwk.public_key_use or "sig") != "sig":
            continue
        key = jwk.key.public_key() if isinstance(jwk.key, ec.EllipticCurvePrivateKey) else jwk.key
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            keys.append(VerificationKey(str(jwk.key_id), key))
    if not keys:
        raise ValueError("the key set has no ES256 (P-256) signing key with a kid")
    return keys


class KeySource:
    """Where the keys come from. keys() is called on every token and must not block."""

    def keys(self) -> list[VerificationKey]:
        raise NotImplementedError

    def unknown_kid(self) -> None:
        """A token named a kid the set does not have: a hint that the issuer may have rotated."""


class FileKeys(KeySource):
    """Keys from local files (a JWKS, or PEM public keys), read again whenever a file changes.

    The check is a stat() per file and token; a file that cannot be read or parsed keeps the keys it
    had (logged), so a half-written file never locks the customers out."""

    def __init__(self, paths: list[Path], parse: Callable[[list[bytes]], list[VerificationKey]]):
        self.paths = paths
        self._parse = parse
        self._seen: tuple | None = None
        self._failure = ""
        self._keys: list[VerificationKey] = []
        self._lock = threading.Lock()
        self._reload(initial=True)

    @classmethod
    def jwks(cls, path: Path) -> "FileKeys":
        return cls([path], lambda contents: keys_from_jwks(contents[0]))

    @classmethod
    def pem(cls, paths: list[Path]) -> "FileKeys":
        def parse(contents: list[bytes]) -> list[VerificationKey]:
            loaded = [serialization.load_pem_public_key(c) for c in contents]
            keys = [k for k in loaded if isinstance(k, ec.EllipticCurvePublicKey) and isinstance(k.curve, ec.SECP256R1)]
            if len(keys) != len(loaded):
                raise ValueError("every PAYMESH_JWT_PUBLIC_KEYS key must be an EC P-256 public key (ES256)")
            return [VerificationKey(None, k) for k in keys]
        return cls(paths, parse)

    def _signature(self) -> tuple:
        stats = [p.stat() for p in self.paths]
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)

    def _reload(self, initial: bool = False) -> None:
        with self._lock:
            try:
                seen = self._signature()
                if seen == self._seen:
                    return
                keys = self._parse([p.read_bytes() for p in self.paths])
            except (OSError, ValueError, jwt.PyJWTError) as error:
                if initial:
                    hint = "; run `paymesh pki`" if isinstance(error, FileNotFoundError) else ""
                    raise ValueError(f"end-user token keys from {', '.join(map(str, self.paths))}: {error}{hint}") \
                        from None
                if str(error) != self._failure:  # once per new failure, not once per token
                    self._failure = str(error)
                    log.warning("end-user token keys in %s could not be read again (%s); keeping the %d loaded",
                                ", ".join(map(str, self.paths)), error, len(self._keys))
                return
            if not initial:
                log.info("end-user token keys reloaded from %s: kids %s", ", ".join(map(str, self.paths)),
                         [k.kid for k in keys])
            self._seen, self._keys, self._failure = seen, keys, ""

    def keys(self) -> list[VerificationKey]:
        self._reload()
        return self._keys


class UrlKeys(KeySource):
    """A JWKS at an https URL, fetched at start and then again every refresh_seconds, in a thread of its
    own so a token check never waits on the network. A token with an unknown kid asks for an early fetch
    (at most one per retry_seconds); the issuer should publish a new key before it signs with it."""

    def __init__(self, url: str, refresh_seconds: float = DEFAULT_JWKS_REFRESH_SECONDS,
                 retry_seconds: float = 30.0, timeout: float = 5.0):
        parts = urlsplit(url)
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
            raise ValueError(f"PAYMESH_JWT_JWKS must be a file or an https URL, got {url!r}")
        self.url, self.refresh_seconds, self.retry_seconds = url, refresh_seconds, retry_seconds
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._keys: list[VerificationKey] = []
        self._loaded_at = -math.inf
        self._tried_at = -math.inf
        self._lock = threading.Lock()
        self._fetching = False
        self._tried_at = time.monotonic()
        self._fetch()  # at start, before the first token; a failure is logged and retried

    def _fetch(self) -> None:
        try:
            keys = keys_from_jwks(self._client.fetch_data())
        except (jwt.PyJWTError, ValueError, OSError) as error:
            log.warning("end-user token keys from %s could not be fetched (%s); keeping the %d loaded",
                        self.url, error, len(self._keys))
        else:
            if [k.kid for k in keys] != [k.kid for k in self._keys]:
                log.info("end-user token keys from %s: kids %s", self.url, [k.kid for k in keys])
            self._keys, self._loaded_at = keys, time.monotonic()
        finally:
            self._fetching = False

    def _fetch_in_background(self, early: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if self._fetching or now - self._tried_at < (self.retry_seconds if early or not self._keys else 0):
                return
            self._fetching, self._tried_at = True, now
        threading.Thread(target=self._fetch, name="jwks-refresh", daemon=True).start()

    def keys(self) -> list[VerificationKey]:
        if time.monotonic() - self._loaded_at >= self.refresh_seconds:
            self._fetch_in_background(early=False)
        return self._keys

    def unknown_kid(self) -> None:
        self._fetch_in_background(early=True)


def key_source_from_env(settings: Settings) -> KeySource:
    jwks = os.environ.get("PAYMESH_JWT_JWKS", "").strip()
    pem_files = [f.strip() for f in os.environ.get("PAYMESH_JWT_PUBLIC_KEYS", "").split(",") if f.strip()]
    if jwks and pem_files:
        log.warning("PAYMESH_JWT_JWKS is set: PAYMESH_JWT_PUBLIC_KEYS is ignored")
    if jwks.startswith(("https://", "http://")):
        refresh = _number_from_env("PAYMESH_JWT_JWKS_REFRESH_SECONDS", DEFAULT_JWKS_REFRESH_SECONDS, 1, 86400)
        return UrlKeys(jwks, refresh_seconds=refresh, retry_seconds=min(30.0, refresh))
    if jwks:
        return FileKeys.jwks(Path(jwks))
    if pem_files:
        return FileKeys.pem([Path(f) for f in pem_files])
    return FileKeys.jwks(pki.token_jwks_path(settings.pki_dir))


# --- the check ----------------------------------------------------------------------------------------


def _when(timestamp) -> str:
    try:
        return datetime.fromtimestamp(float(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "an unreadable time"


def _channel_name(channel: str) -> str:
    return {"app": "the app", "internet-banking": "internet banking"}.get(channel, f"the {channel} channel")


@dataclass
class TokenVerifier:
    issuer: str
    audiences: dict[str, str]  # digital channel -> the audience its tokens must carry
    key_source: KeySource
    max_lifetime_seconds: float = DEFAULT_MAX_LIFETIME_SECONDS
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    clock: Callable[[], float] = field(default=time.time, repr=False)

    @classmethod
    def from_env(cls, settings: Settings) -> "TokenVerifier":
        return cls(
            issuer=issuer_from_env(),
            audiences=audiences_from_env(),
            key_source=key_source_from_env(settings),
            max_lifetime_seconds=_number_from_env("PAYMESH_JWT_MAX_LIFETIME_SECONDS",
                                                  DEFAULT_MAX_LIFETIME_SECONDS, 1, 86400),
            leeway_seconds=_number_from_env("PAYMESH_JWT_LEEWAY_SECONDS", DEFAULT_LEEWAY_SECONDS, 0,
                                            MAX_LEEWAY_SECONDS),
        )

    def customer_of(self, authorization: str | None, channel: str | None = None) -> str:
        """The verified token's subject (the customer id) for a call on `channel` (the caller
        certificate's channel name, "app" or "internet-banking"); raises TokenRefused.

        channel=None (the call before channels were passed) takes the audience of any digital channel."""
        if channel is None:
            wanted = set(self.audiences.values())
        elif channel in self.audiences:
            wanted = {self.audiences[channel]}
        else:
            raise TokenRefused(f"{_channel_name(channel)} does not take end-user tokens")
        # The scheme is case-insensitive (RFC 7235 section 2.1): "bearer" and "BEARER" are Bearer.
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRefused("an end-user token is required: send 'authorization: Bearer <JWT>'")
        token = token.strip()
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRefused(f"the end-user token is longer than {MAX_TOKEN_CHARS} characters")
        claims = self._verified_claims(token)
        self._check_times(claims)
        self._check_audience(claims["aud"], wanted, channel)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS \
                or not subject.isprintable():
            raise TokenRefused(f"the end-user token's subject (sub) must be a customer id of 1 to "
                               f"{MAX_SUBJECT_CHARS} printable characters")
        return subject

    def _verified_claims(self, token: str) -> dict:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("the end-user token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            named = f"'{alg}'" if isinstance(alg, str) and alg in _KNOWN_ALGORITHMS else "another algorithm"
            raise TokenRefused(f"the end-user token is signed with {named}; only {ALGORITHM} is accepted")
        kid = header.get("kid")
        keys = self.key_source.keys()
        if not keys:
            raise TokenRefused("the issuer's signing keys are not available yet; try again shortly")
        candidates = [k for k in keys if k.kid is None or k.kid == kid]
        if not candidates:
            if kid is None:
                raise TokenRefused("the end-user token names no signing key (no 'kid' in its header)")
            self.key_source.unknown_kid()
            raise TokenRefused("the end-user token was signed by a key the issuer does not publish (unknown kid)")
        for candidate in candidates:
            try:
                return jwt.decode(
                    token, candidate.key, algorithms=[ALGORITHM], issuer=self.issuer,
                    options={"require": list(REQUIRED_CLAIMS), "verify_aud": False, "verify_exp": False,
                             "verify_nbf": False, "verify_iat": False, "verify_sub": False, "verify_jti": False},
                )
            except jwt.InvalidSignatureError:
                continue  # a PEM key without kid: maybe the next one signed it
            except jwt.MissingRequiredClaimError as error:
                raise TokenRefused(f"the end-user token has no '{error.claim}' claim (required: "
                                   f"{', '.join(REQUIRED_CLAIMS)})") from None
            except jwt.InvalidIssuerError:
                raise TokenRefused(f"the end-user token was issued by someone else; "
                                   f"only tokens from {self.issuer} are accepted") from None
            except jwt.DecodeError:
                raise TokenRefused("the end-user token is not a well-formed JWT") from None
            except jwt.PyJWTError:
                raise TokenRefused("the end-user token's claims are not valid") from None
        raise TokenRefused("the end-user token's signature does not verify")

    def _check_times(self, claims: dict) -> None:
        now, leeway = self.clock(), self.leeway_seconds
        times = {}
        for name in ("iat", "exp", "nbf"):
            if name not in claims:
                continue
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1e12 < value < 1e12:
                raise TokenRefused(f"the end-user token's '{name}' must be a number of seconds since 1970")
            times[name] = value
        iat, exp = times["iat"], times["exp"]
        if exp <= now - leeway:
            raise TokenRefused(f"the end-user token expired at {_when(exp)}; get a new one")
        if iat > now + leeway:
            raise TokenRefused(f"the end-user token says it was issued at {_when(iat)}, in the future")
        if "nbf" in times and times["nbf"] > now + leeway:
            raise TokenRefused(f"the end-user token is not valid before {_when(times['nbf'])}")
        if exp - iat > self.max_lifetime_seconds:
            raise TokenRefused(f"the end-user token lives {exp - iat:.0f} s from issue to expiry; at most "
                               f"{self.max_lifetime_seconds:.0f} s are accepted")

    def _check_audience(self, aud, wanted: set[str], channel: str | None) -> None:
        given = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
        if not given or not all(isinstance(a, str) for a in given):
            raise TokenRefused("the end-user token's audience (aud) is not a name or a list of names")
        ours = set(self.audiences.values())
        if given & wanted and not (given & ours) - wanted:
            return
        if channel is None:
            raise TokenRefused("the end-user token is not for a digital channel of paymesh (wrong audience)")
        others = [c for c, a in self.audiences.items() if a in given and c != channel]
        if others and given & wanted:
            raise TokenRefused(f"the end-user token is also for {_channel_name(others[0])}; "
                               f"{_channel_name(channel)} accepts only tokens for it alone "
                               f"(audience '{self.audiences[channel]}')")
        if others:
            raise TokenRefused(f"the end-user token is for {_channel_name(others[0])}; "
                               f"{_channel_name(channel)} accepts only its own tokens "
                               f"(audience '{self.audiences[channel]}')")
        raise TokenRefused(f"the end-user token is for another audience; {_channel_name(channel)} accepts "
                           f"only audience '{self.audiences[channel]}'")
