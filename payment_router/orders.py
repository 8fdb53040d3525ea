"""A channel's payment order: validation, and the identity derived from it."""

import hashlib
import hmac
import re
from pathlib import Path

from bank.common.v1 import errors_pb2, types_pb2
from bank.payments.v1 import payments_pb2
from paymesh.chart_of_accounts import MAX_AMOUNT_MINOR
from paymesh.errors import Refused
from paymesh.loan_ids import loan_type_of
from payment_router.channel_policy import ChannelPolicy

KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # fullmatch: "$" would let a final newline in
CURRENCIES = frozenset(["PEN", "USD"])


class PaymentIds:
    """Payment ids: the same (channel, customer, key) names the same payment on every router
    replica, so a retry to any of them is the same payment; a digital channel's customers each
    have their own keys (one customer's key never finds another's payment). Keyed with the
    routers' shared secret, so nobody can work out another's payment id from a key."""

    def __init__(self, secret: bytes):
        if len(secret) < 32:
            raise ValueError("the payment id secret must be at least 32 bytes")
        self._secret = secret

    @classmethod
    def from_file(cls, path: Path) -> "PaymentIds":
        try:
            return cls(path.read_bytes().strip())
        except FileNotFoundError:
            raise SystemExit(f"no payment id secret at {path} (PAYMESH_PAYMENT_ID_SECRET_FILE; `paymesh pki` "
                             "makes a dev one): every router replica needs the same one") from None

    def of(self, channel: str, idempotency_key: str, customer_id: str = "") -> str:
        message = f"{channel}\n{customer_id}\n{idempotency_key}".encode()
        return "PAY-" + hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]


def body_hash(order: payments_pb2.PaymentOrder) -> str:
    """What a retry must repeat exactly; the same key with another body is refused."""
    fields = (order.loan_id, order.amount.currency_code, order.amount.amount_minor, order.prepayment_mode,
              order.channel_reference)
    return hashlib.sha256("\x1f".join(map(str, fields)).encode()).hexdigest()


def validate(order: payments_pb2.PaymentOrder, policy: ChannelPolicy, key: str,
             prefix: str = "payment") -> types_pb2.LoanType:
    """Checks the order (named by key) against its channel's policy; returns its loan type or raises Refused."""
    violations = []
    if not KEY_PATTERN.fullmatch(key):
        violations.append((f"{prefix}.idempotency_key", "required: 1-64 characters of A-Z a-z 0-9 . _ : -"))
    loan_type = loan_type_of(order.loan_id)
    if loan_type is None:
        violations.append((f"{prefix}.loan_id", "not a loan id: expected CSH-, MTG- or VEH- and digits"))
    currency, amount = order.amount.currency_code, order.amount.amount_minor
    if currency not in CURRENCIES:
        violations.append((f"{prefix}.amount.currency_code", f"must be one of {sorted(CURRENCIES)}"))
    if not 0 < amount <= MAX_AMOUNT_MINOR:
        violations.append((f"{prefix}.amount.amount_minor",
                           f"must be a positive amount in minor units (cents), at most {MAX_AMOUNT_MINOR}"))
    if order.prepayment_mode not in types_pb2.PrepaymentMode.values():
        violations.append((f"{prefix}.prepayment_mode", "unknown prepayment mode"))
    if len(order.channel_reference) > 64 or not order.channel_reference.isprintable():
        violations.append((f"{prefix}.channel_reference", "at most 64 printable characters"))
    if violations:
        raise Refused(errors_pb2.ERROR_REASON_INVALID_FIELD, "the payment order is not valid: " + "; ".join(
            f"{f}: {d}" for f, d in violations), violations=violations)
    assert loan_type is not None, "a malformed loan id is one of the violations"
    limit = policy.max_amount_minor.get(currency)
    if limit is not None and amount > limit:
        raise Refused(
            errors_pb2.ERROR_REASON_AMOUNT_OVER_CHANNEL_LIMIT,
            f"{amount} {currency} minor units is over the {policy.name} channel's limit of {limit} per payment",
            violations=[(f"{prefix}.amount.amount_minor", f"at most {limit} for {currency} on this channel")],
        )
    return loan_type
