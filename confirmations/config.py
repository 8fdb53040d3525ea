"""The confirmation service's own settings, from environment variables."""

import os
from dataclasses import dataclass


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, "").strip() or default)


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, "").strip() or default)


@dataclass(frozen=True)
class ConfirmationSettings:
    # PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS: an idle subscription gets a Heartbeat this often.
    heartbeat_seconds: float = 15.0
    # PAYMESH_CONFIRMATIONS_BUFFER: live items held per subscriber before it falls back to the log.
    subscriber_buffer: int = 4096
    # PAYMESH_WEBHOOK_ALLOWED_HOSTS: comma-separated origins scheme://host:port a webhook URL may name
    # ("https://hooks.example.bank:443"; "https://*.example.bank:443" allows its subdomains). Naming the
    # port keeps webhooks off the mesh's own loopback ports; parsed and checked by webhooks.Allowlist.
    webhook_allowlist: tuple[str, ...] = ("http://127.0.0.1:8080", "http://localhost:8080")
    # PAYMESH_WEBHOOK_MAX_ATTEMPTS: attempts before a delivery is dead-lettered.
    webhook_max_attempts: int = 8
    # PAYMESH_WEBHOOK_BASE_DELAY_SECONDS / _MAX_DELAY_SECONDS: exponential backoff bounds.
    webhook_base_delay: float = 1.0
    webhook_max_delay: float = 300.0
    # PAYMESH_WEBHOOK_TIMEOUT_SECONDS: one POST's time limit.
    webhook_timeout: float = 10.0
    # PAYMESH_WEBHOOK_CONCURRENCY: POSTs in flight at once to one endpoint at most (the bound of its window,
    # which is sized to the endpoint's latency; each endpoint has its own). 0 sends nothing.
    webhook_concurrency: int = 128
    # What one channel may hold at once (each costs memory or delivery work): open Subscribe calls
    # (PAYMESH_CONFIRMATIONS_MAX_SUBSCRIPTIONS), durable consumers (PAYMESH_CONFIRMATIONS_MAX_CONSUMERS),
    # live webhook endpoints (PAYMESH_WEBHOOK_MAX_ENDPOINTS). Over one: RESOURCE_EXHAUSTED, QuotaFailure.
    max_subscriptions: int = 200
    max_consumers: int = 100
    max_webhook_endpoints: int = 20

    @classmethod
    def from_env(cls) -> "ConfirmationSettings":
        origins = os.environ.get("PAYMESH_WEBHOOK_ALLOWED_HOSTS", "").strip()
        return cls(
            heartbeat_seconds=_float("PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS", cls.heartbeat_seconds),
            subscriber_buffer=_int("PAYMESH_CONFIRMATIONS_BUFFER", cls.subscriber_buffer),
            webhook_allowlist=tuple(o.strip() for o in origins.split(",") if o.strip()) or cls.webhook_allowlist,
            webhook_max_attempts=_int("PAYMESH_WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts),
            webhook_base_delay=_float("PAYMESH_WEBHOOK_BASE_DELAY_SECONDS", cls.webhook_base_delay),
            webhook_max_delay=_float("PAYMESH_WEBHOOK_MAX_DELAY_SECONDS", cls.webhook_max_delay),
            webhook_timeout=_float("PAYMESH_WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout),
            webhook_concurrency=_int("PAYMESH_WEBHOOK_CONCURRENCY", cls.webhook_concurrency),
            max_subscriptions=_int("PAYMESH_CONFIRMATIONS_MAX_SUBSCRIPTIONS", cls.max_subscriptions),
            max_consumers=_int("PAYMESH_CONFIRMATIONS_MAX_CONSUMERS", cls.max_consumers),
            max_webhook_endpoints=_int("PAYMESH_WEBHOOK_MAX_ENDPOINTS", cls.max_webhook_endpoints),
        )
