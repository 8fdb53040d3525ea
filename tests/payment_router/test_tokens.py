"""The end-user token check (payment_router/tokens.py), without a mesh: a token per channel, keys by
kid from a key set that is read again when it changes, a bounded lifetime, a small leeway (issue 23)."""

import dataclasses
import hashlib
import hmac
import json
import os
import shutil
import threading
import time
from base64 import urlsafe_b64encode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from payment_router.tokens import DEFAULT_ISSUER, FileKeys, TokenRefused, TokenVerifier, UrlKeys
from paymesh_tools.dev_tokens import mint
from paymesh_tools import dev_pki
from paymesh import pki
from paymesh.config import Settings


@pytest.fixture(autouse=True)
def no_token_settings(monkeypatch):
    for name in [n for n in os.environ if n.startswith("PAYMESH_JWT_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def verifier(issuer):
    return TokenVerifier.from_env(dataclasses.replace(Settings.from_env(), pki_dir=issuer))


def bearer(token: str) -> str:
    return "Bearer " + token


def refusal(verifier, authorization, channel="app") -> str:
    with pytest.raises(TokenRefused) as refused:
        verifier.customer_of(authorization, channel)
    message = str(refused.value)
    if authorization and "." in authorization:
        token = authorization.removeprefix("Bearer ")
        assert token not in message and not any(len(p) > 8 and p in message for p in token.split("."))
    return message


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(key: ec.EllipticCurvePrivateKey) -> dict:
    return dev_pki._public_jwk(key)


def write_jwks(path, *keys: ec.EllipticCurvePrivateKey) -> None:
    """Like an issuer publishing its set: a whole new file, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"keys": [jwk_of(k) for k in keys]}))
    os.replace(tmp, path)


def signed(key: ec.EllipticCurvePrivateKey, channel="app", kid: str | None = "own", **claims) -> str:
    now = int(time.time())
    payload = {"iss": DEFAULT_ISSUER, "aud": f"paymesh-{channel}", "sub": "C-9", "iat": now, "exp": now + 600,
               **claims}
    kid = dev_pki.token_key_id(key) if kid == "own" else kid
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid} if kid else None)


# --- a good token, and one channel's token on the other ----------------------------------------------



def test_the_bearer_scheme_is_case_insensitive(verifier, issuer):
    """"authorization: bearer <jwt>" was refused: the scheme is case-insensitive (RFC 7235)."""
    token = mint(issuer, "C-1", "app")
    for scheme in ("bearer", "BEARER", "Bearer", "bEaReR"):
        assert verifier.customer_of(f"{scheme} {token}", "app") == "C-1", scheme
    for malformed in (token, f"Basic {token}", "Bearer", "Bearer ", f"Bearer{token}"):
        assert "token is required" in refusal(verifier, malformed, "app"), malformed


def test_a_token_for_its_own_channel_gives_the_customer(verifier, issuer):
    assert verifier.customer_of(bearer(mint(issuer, "C-1", "app")), "app") == "C-1"
    assert verifier.customer_of(bearer(mint(issuer, "C-2", "internet-banking")), "internet-banking") == "C-2"


def test_an_app_token_is_refused_on_internet_banking_and_the_other_way_round(verifier, issuer):
    """The old router had one audience for both: an app token paid on internet banking."""
    message = refusal(verifier, bearer(mint(issuer, "C-1", "app")), "internet-banking")
    assert "for the app" in message and "paymesh-internet-banking" in message
    assert "for internet banking" in refusal(verifier, bearer(mint(issuer, "C-1", "internet-banking")), "app")


def test_a_token_for_both_channels_or_for_another_api_is_refused(verifier, issuer):
    both = mint(issuer, "C-1", "app", aud=["paymesh-app", "paymesh-internet-banking"])
    assert "also for internet banking" in refusal(verifier, bearer(both), "app")
    assert "another audience" in refusal(verifier, bearer(mint(issuer, "C-1", "app", aud="paymesh-payments")), "app")
    assert "does not take end-user tokens" in refusal(verifier, bearer(mint(issuer, "C-1")), "atm")


def test_the_call_without_a_channel_takes_either_digital_channel_until_the_router_passes_it(verifier, issuer):
    assert verifier.customer_of(bearer(mint(issuer, "C-1", "app"))) == "C-1"
    assert verifier.customer_of(bearer(mint(issuer, "C-1", "internet-banking"))) == "C-1"
    assert "wrong audience" in refusal(verifier, bearer(mint(issuer, "C-1", aud="another-api")), None)


def test_the_audiences_come_from_the_environment_and_must_differ(issuer, monkeypatch):
    settings = dataclasses.replace(Settings.from_env(), pki_dir=issuer)
    monkeypatch.setenv("PAYMESH_JWT_AUDIENCE_APP", "bank-mobile")
    verifier = TokenVerifier.from_env(settings)
    token = mint(issuer, "C-1", "app")  # the dev issuer mints what the router expects
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "bank-mobile"
    assert verifier.customer_of(bearer(token), "app") == "C-1"
    monkeypatch.setenv("PAYMESH_JWT_AUDIENCE_INTERNET_BANKING", "bank-mobile")
    with pytest.raises(ValueError, match="its own token audience"):
        TokenVerifier.from_env(settings)
    monkeypatch.delenv("PAYMESH_JWT_AUDIENCE_INTERNET_BANKING")
    monkeypatch.setenv("PAYMESH_JWT_AUDIENCE", "paymesh-payments")  # the one audience of old: not read
    verifier = TokenVerifier.from_env(settings)
    assert "another audience" in refusal(verifier, bearer(mint(issuer, "C-1", aud="paymesh-payments")), "app")


# --- keys by kid, from a key set that is read again --------------------------------------------------


def test_the_dev_issuer_publishes_its_key_with_a_kid_and_mints_with_it(issuer):
    key, kid = dev_pki.token_signing_key(issuer)
    published = json.loads(pki.token_jwks_path(issuer).read_text())["keys"]
    assert [k["kid"] for k in published] == [kid] and published[0]["alg"] == "ES256" and "d" not in published[0]
    assert jwt.get_unverified_header(mint(issuer, "C-1"))["kid"] == kid


def test_a_pki_from_before_the_key_set_gets_one_and_running_again_changes_nothing(issuer):
    pki.token_jwks_path(issuer).unlink()
    assert dev_pki.ensure_dev_pki(issuer)[0] == pki.token_jwks_path(issuer)
    assert dev_pki.ensure_dev_pki(issuer) == []


def test_a_kid_the_issuer_does_not_publish_or_no_kid_is_refused(verifier, issuer):
    assert "unknown kid" in refusal(verifier, bearer(mint(issuer, "C-1", kid="someone-elses-key")))
    assert "no 'kid'" in refusal(verifier, bearer(mint(issuer, "C-1", kid=None)))


def test_another_key_under_the_issuers_kid_does_not_verify(verifier, issuer):
    _, kid = dev_pki.token_signing_key(issuer)
    forged = signed(ec.generate_private_key(ec.SECP256R1()), kid=kid)
    assert "signature does not verify" in refusal(verifier, bearer(forged))


def test_a_rotated_dev_key_is_accepted_without_a_restart_and_the_old_ones_until_retired(verifier, issuer):
    before = mint(issuer, "C-1")
    new_kid = dev_pki.rotate_token_signing_key(issuer)  # `paymesh pki --rotate-token-key`
    after = mint(issuer, "C-2")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert verifier.customer_of(bearer(after), "app") == "C-2"  # the same verifier: no restart
    assert verifier.customer_of(bearer(before), "app") == "C-1"  # the previous key is still published
    for _ in range(dev_pki.TOKEN_KEYS_KEPT - 1):
        dev_pki.rotate_token_signing_key(issuer)
    assert "unknown kid" in refusal(verifier, bearer(before))  # retired: no longer in the set


def test_a_key_added_to_the_set_is_accepted_and_a_key_removed_is_refused(tmp_path):
    jwks = tmp_path / "jwks.json"
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    write_jwks(jwks, old)
    verifier = TokenVerifier(DEFAULT_ISSUER, {"app": "paymesh-app", "internet-banking": "paymesh-internet-banking"},
                             FileKeys.jwks(jwks))
    assert verifier.customer_of(bearer(signed(old)), "app") == "C-9"
    assert "unknown kid" in refusal(verifier, bearer(signed(new)))
    write_jwks(jwks, new, old)
    assert verifier.customer_of(bearer(signed(new)), "app") == "C-9"
    write_jwks(jwks, new)
    assert "unknown kid" in refusal(verifier, bearer(signed(old)))
    jwks.write_text('{"keys": [')  # a broken file keeps the keys it had
    assert verifier.customer_of(bearer(signed(new)), "app") == "C-9"


def test_a_key_set_at_a_url_is_fetched_again_and_an_unknown_kid_asks_for_it_early():
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    published = {"keys": [jwk_of(old)]}

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps(published).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = UrlKeys(f"http://127.0.0.1:{server.server_port}/jwks.json", refresh_seconds=3600, retry_seconds=0)
        verifier = TokenVerifier(DEFAULT_ISSUER, {"app": "paymesh-app", "internet-banking": "paymesh-internet-banking"},
                                 source)
        assert verifier.customer_of(bearer(signed(old)), "app") == "C-9"
        published["keys"] = [jwk_of(new), jwk_of(old)]
        assert "unknown kid" in refusal(verifier, bearer(signed(new)))  # the check itself never waits
        deadline = time.monotonic() + 5
        while new_kid_missing(source, new) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert verifier.customer_of(bearer(signed(new)), "app") == "C-9"
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="https"):
        UrlKeys("http://login.example/jwks.json")


def new_kid_missing(source, key) -> bool:
    published = source.keys()  # a KeySource's list of keys (not a dict: it is not iterable itself)
    return dev_pki.token_key_id(key) not in {k.kid for k in published}


def test_pem_public_keys_still_work_and_are_read_again(tmp_path, issuer, monkeypatch):
    pem = tmp_path / "issuer.pub"
    shutil.copy(dev_pki.token_public_key_path(issuer), pem)
    monkeypatch.setenv("PAYMESH_JWT_PUBLIC_KEYS", str(pem))
    verifier = TokenVerifier.from_env(dataclasses.replace(Settings.from_env(), pki_dir=tmp_path / "elsewhere"))
    assert verifier.customer_of(bearer(mint(issuer, "C-1")), "app") == "C-1"
    other = ec.generate_private_key(ec.SECP256R1())
    pem.with_name("new.pub").write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    os.replace(pem.with_name("new.pub"), pem)
    assert verifier.customer_of(bearer(signed(other)), "app") == "C-9"
    assert "signature does not verify" in refusal(verifier, bearer(mint(issuer, "C-1")))


# --- lifetime, times and leeway --------------------------------------------------------------------


def test_a_token_living_longer_than_the_maximum_is_refused(verifier, issuer):
    """The old router took a token valid for ten years."""
    now = int(time.time())
    ten_years = mint(issuer, "C-1", exp=now + 10 * 365 * 86400)
    assert "at most 3600 s" in refusal(verifier, bearer(ten_years))
    assert verifier.customer_of(bearer(mint(issuer, "C-1", iat=now, exp=now + 3600)), "app") == "C-1"
    assert "at most" in refusal(verifier, bearer(mint(issuer, "C-1", iat=now - 60, exp=now + 3600)))


def test_the_maximum_lifetime_and_the_leeway_are_settings(issuer, monkeypatch):
    monkeypatch.setenv("PAYMESH_JWT_MAX_LIFETIME_SECONDS", "300")
    monkeypatch.setenv("PAYMESH_JWT_LEEWAY_SECONDS", "0")
    verifier = TokenVerifier.from_env(dataclasses.replace(Settings.from_env(), pki_dir=issuer))
    assert (verifier.max_lifetime_seconds, verifier.leeway_seconds) == (300, 0)
    assert "at most 300 s" in refusal(verifier, bearer(mint(issuer, "C-1")))  # the dev default, 900 s
    monkeypatch.setenv("PAYMESH_JWT_LEEWAY_SECONDS", "3600")
    with pytest.raises(ValueError, match="PAYMESH_JWT_LEEWAY_SECONDS"):
        TokenVerifier.from_env(dataclasses.replace(Settings.from_env(), pki_dir=issuer))


@pytest.mark.parametrize("claim", ["iat", "exp", "sub", "iss", "aud"])
def test_a_token_without_a_required_claim_is_refused(verifier, issuer, claim):
    assert f"no '{claim}' claim" in refusal(verifier, bearer(mint(issuer, "C-1", **{claim: None})))


def test_expired_beyond_the_leeway_is_refused_and_within_it_accepted(verifier, issuer):
    """The old router gave 30 s after expiry."""
    now = int(time.time())
    assert "expired at" in refusal(verifier, bearer(mint(issuer, "C-1", iat=now - 600, exp=now - 10)))
    assert verifier.customer_of(bearer(mint(issuer, "C-1", iat=now - 600, exp=now - 2)), "app") == "C-1"


def test_not_yet_valid_or_issued_in_the_future_is_refused(verifier, issuer):
    now = int(time.time())
    assert "not valid before" in refusal(verifier, bearer(mint(issuer, "C-1", nbf=now + 60)))
    assert "in the future" in refusal(verifier, bearer(mint(issuer, "C-1", iat=now + 60, exp=now + 600)))
    assert verifier.customer_of(bearer(mint(issuer, "C-1", nbf=now + 2)), "app") == "C-1"  # within the leeway
    assert verifier.customer_of(bearer(mint(issuer, "C-1", nbf=None)), "app") == "C-1"  # nbf is optional


@pytest.mark.parametrize("claims", [dict(exp="soon"), dict(iat=True), dict(exp=10**400), dict(sub=""),
                                    dict(sub="C-1\n"), dict(sub=12), dict(aud=7)])
def test_odd_claim_values_are_refused_clearly(verifier, issuer, claims):
    assert refusal(verifier, bearer(mint(issuer, "C-1", **claims))).startswith("the end-user token")


# --- the algorithm and the shape -------------------------------------------------------------------


def test_alg_none_and_hmac_with_the_public_key_are_refused(verifier, issuer):
    _, kid = dev_pki.token_signing_key(issuer)
    claims = jwt.decode(mint(issuer, "C-1"), options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none", headers={"kid": kid})
    assert "'none'" in refusal(verifier, bearer(unsigned))
    signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "."
                     + b64(json.dumps(claims).encode()))
    secret = dev_pki.token_public_key_path(issuer).read_bytes()
    confused = signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    assert "'HS256'; only ES256" in refusal(verifier, bearer(confused))
    odd = b64(json.dumps({"alg": "<script>", "kid": kid}).encode()) + "." + b64(b"{}") + "." + b64(b"signature")
    assert "another algorithm" in refusal(verifier, bearer(odd))


@pytest.mark.parametrize("authorization, says", [
    (None, "is required"), ("", "is required"), ("Basic Q1VTVC0wMDAxOnB3", "is required"),
    ("Bearer not.a.jwt", "not a well-formed JWT"), ("Bearer ", "is required"),
    ("Bearer " + "a" * 9000, "longer than"), ("Bearer eyJhbGciOiJFUzI1NiJ9.e30", "not a well-formed JWT"),
])
def test_garbage_is_refused_with_a_sentence(verifier, authorization, says):
    assert says in refusal(verifier, authorization)


def test_a_refusal_never_echoes_the_token(verifier, issuer):
    now = int(time.time())
    for token in (mint(issuer, "C-1", "internet-banking"), mint(issuer, "C-1", kid="k"),
                  mint(issuer, "C-1", exp=now - 100), mint(issuer, "C-1", iss="https://evil.example")):
        refusal(verifier, bearer(token), "app")  # refusal() asserts no part of the token is in the message
