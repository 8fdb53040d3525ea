"""`paymesh token`: dev end-user tokens for the digital channels, signed by the dev issuer's
current key (paymesh_tools/dev_pki.py), as the router's TokenVerifier expects them."""

import time
from pathlib import Path

import jwt

from payment_router.tokens import (ALGORITHM, DEFAULT_AUDIENCES, DEFAULT_MAX_LIFETIME_SECONDS, DIGITAL_CHANNELS,
                                   audience_of, issuer_from_env)
from paymesh.config import Settings
from paymesh_tools import dev_pki

DEFAULT_TTL_SECONDS = 900  # what `mint` and `paymesh token` give a dev token
def mint(pki_dir: Path, subject: str, channel: str = "app", *, ttl_seconds: int = DEFAULT_TTL_SECONDS,
         **claims) -> str:
    """A dev token for `channel`, signed by the dev issuer's current key (its kid in the header).

    claims replace the standard ones (iss, aud, sub, iat, nbf, exp) or add others; a claim given as None
    is left out, and kid=... replaces the header's kid: tests make bad tokens this way."""
    if channel not in DEFAULT_AUDIENCES:
        raise ValueError(f"{channel!r} is not a digital channel ({', '.join(DIGITAL_CHANNELS)})")
    key, kid = dev_pki.token_signing_key(pki_dir)
    kid = claims.pop("kid", kid)
    now = int(time.time())
    audience = audience_of(channel)
    payload = {"iss": issuer_from_env(), "aud": audience, "sub": subject,
               "iat": now, "nbf": now, "exp": now + ttl_seconds, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers=None if kid is None else {"kid": kid})


def add_arguments(parser) -> None:
    parser.add_argument("--customer", required=True, help="the customer id (the token's subject)")
    parser.add_argument("--channel", choices=DIGITAL_CHANNELS, default="app",
                        help="the digital channel the token is for (its audience); default app")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS,
                        help=f"seconds until it expires (default {DEFAULT_TTL_SECONDS}; the router accepts at "
                             f"most PAYMESH_JWT_MAX_LIFETIME_SECONDS, {DEFAULT_MAX_LIFETIME_SECONDS} by default)")


def run(args) -> int:
    try:
        print(mint(Settings.from_env().pki_dir, args.customer, args.channel, ttl_seconds=args.ttl))
    except FileNotFoundError as error:
        print(error)
        return 1
    return 0
