"""End-user tokens of the digital channels: JWTs checked with PyJWT, algorithm
pinned, issuer, audience, expiry and not-before required. `paymesh token` mints
dev tokens with the dev issuer's key from the PKI folder.

PAYMESH_JWT_ISSUER, PAYMESH_JWT_AUDIENCE and PAYMESH_JWT_PUBLIC_KEYS (PEM files,
comma-separated; the dev issuer's by default) configure the check.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from paymesh import pki
from paymesh.config import Settings

ALGORITHM = "ES256"
DEFAULT_ISSUER = "https://login.paymesh.bank"
DEFAULT_AUDIENCE = "paymesh-payments"
LEEWAY_SECONDS = 30


class TokenRefused(Exception):
    """A missing, malformed, expired or untrusted token; the message says which."""


@dataclass(frozen=True)
class TokenVerifier:
    issuer: str
    audience: str
    keys: tuple[bytes, ...]

    @classmethod
    def from_env(cls, settings: Settings) -> "TokenVerifier":
        files = os.environ.get("PAYMESH_JWT_PUBLIC_KEYS") or str(pki.token_public_key_path(settings.pki_dir))
        return cls(
            issuer=os.environ.get("PAYMESH_JWT_ISSUER") or DEFAULT_ISSUER,
            audience=os.environ.get("PAYMESH_JWT_AUDIENCE") or DEFAULT_AUDIENCE,
            keys=tuple(Path(f.strip()).read_bytes() for f in files.split(",") if f.strip()),
        )

    def customer_of(self, authorization: str | None) -> str:
        """The verified token's subject (the customer id); raises TokenRefused."""
        if not authorization or not authorization.startswith("Bearer "):
            raise TokenRefused("an end-user token is required: send 'authorization: Bearer <JWT>'")
        token = authorization.removeprefix("Bearer ").strip()
        last_error: Exception | None = None
        for key in self.keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                    leeway=LEEWAY_SECONDS, options={"require": ["exp", "nbf", "iss", "aud", "sub"]},
                )
                return str(claims["sub"])
            except jwt.InvalidSignatureError as error:
                last_error = error  # maybe another configured key signed it
            except jwt.PyJWTError as error:
                raise TokenRefused(f"end-user token refused: {error}") from None
        raise TokenRefused(f"end-user token refused: {last_error or 'no verification key configured'}")


def mint(pki_dir: Path, customer_id: str, ttl_seconds: int = 900, **overrides) -> str:
    """A dev token signed by the dev issuer; overrides replace claims (tests make bad ones)."""
    now = int(time.time())
    claims = {"iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": customer_id,
              "iat": now, "nbf": now, "exp": now + ttl_seconds, **overrides}
    return jwt.encode(claims, pki.token_signing_key_path(pki_dir).read_bytes(), algorithm=ALGORITHM)


def add_arguments(parser) -> None:
    parser.add_argument("--customer", required=True, help="the customer id (the token's subject)")
    parser.add_argument("--ttl", type=int, default=900, help="seconds until it expires (default 900)")


def run(args) -> int:
    print(mint(Settings.from_env().pki_dir, args.customer, args.ttl))
    return 0
