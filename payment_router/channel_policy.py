"""Per-channel policy (channels.toml): allowed operations, amount limits, rate limits."""

import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from paymesh.topology import CHANNELS

DEFAULT_POLICY_FILE = Path(__file__).with_name("channels.toml")
OPERATIONS = frozenset(["submit", "stream", "batch", "get", "reverse", "inquire", "customer_loans"])


@dataclass
class TokenBucket:
    """rate tokens per second, at most burst; take() answers how long to wait when empty."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self):
        self.tokens, self.stamp = self.burst, time.monotonic()

    def take(self, count: int = 1) -> float:
        """0 when the tokens were taken; otherwise the seconds until they would be there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= count:
            self.tokens -= count
            return 0.0
        return (count - self.tokens) / self.rate


@dataclass
class ChannelPolicy:
    name: str
    operations: frozenset[str]
    max_amount_minor: dict[str, int]
    requires_token: bool
    bucket: TokenBucket
    # May a digital customer pay a loan that is not theirs (a relative's)? Their inquiry sees only their own.
    third_party_payments: bool = True
    # The most StreamPayments and UploadBatch calls one caller identity (a channel, or one of its
    # devices) may hold open at once: each open stream holds memory in the router.
    max_open_streams: int = 100
    max_open_uploads: int = 4
    # Of those, what one customer of a digital channel (by their token) may hold, each kind.
    max_open_per_customer: int = 2
    # A StreamPayments that sends nothing, with nothing in flight, this long is ended (UNAVAILABLE).
    stream_idle_seconds: float = 300.0


def load_policies(path: Path | None = None) -> dict[str, ChannelPolicy]:
    path = path or Path(os.environ.get("PAYMESH_CHANNEL_POLICY") or DEFAULT_POLICY_FILE)
    raw = tomllib.loads(path.read_text())
    unknown = set(raw) - set(CHANNELS)
    if unknown or set(raw) != set(CHANNELS):
        raise ValueError(f"{path}: channels must be exactly {sorted(CHANNELS)}; got {sorted(raw)}")
    policies = {}
    for name, entry in raw.items():
        operations = frozenset(entry["operations"])
        if not operations <= OPERATIONS:
            raise ValueError(f"{path}: [{name}] unknown operations {sorted(operations - OPERATIONS)}")
        policies[name] = ChannelPolicy(
            name=name,
            operations=operations,
            max_amount_minor={k: int(v) for k, v in entry["max_amount_minor"].items()},
            requires_token=bool(entry["requires_token"]),
            bucket=TokenBucket(float(entry["rate_per_second"]), float(entry["burst"])),
            third_party_payments=bool(entry.get("third_party_payments", True)),
            max_open_streams=int(entry.get("max_open_streams", ChannelPolicy.max_open_streams)),
            max_open_uploads=int(entry.get("max_open_uploads", ChannelPolicy.max_open_uploads)),
            max_open_per_customer=int(entry.get("max_open_per_customer", ChannelPolicy.max_open_per_customer)),
            stream_idle_seconds=float(entry.get("stream_idle_seconds", ChannelPolicy.stream_idle_seconds)),
        )
    return policies
