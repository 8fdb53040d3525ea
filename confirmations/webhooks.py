"""Webhook delivery: each pending delivery is POSTed as JSON with the Standard
Webhooks headers (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256),
retried with exponential backoff and jitter, dead-lettered after the last attempt.

Delivery is at least once: the webhook-id ("msg_<sequence>") stays the same on
every retry and replay, so a receiver drops what it has already seen.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import urllib.parse

import aiohttp
from google.protobuf import json_format

from bank.common.v1 import types_pb2
from bank.confirmations.v1.confirmations_pb2 import Confirmation
from confirmations import webhook_store
from confirmations.config import ConfirmationSettings
from paymesh.sqlite import Store

logger = logging.getLogger(__name__)
LOOPBACK_HOSTS = frozenset(["127.0.0.1", "::1", "localhost"])
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"


def url_problem(url: str, allowed_hosts: tuple[str, ...]) -> str | None:
    """Why the endpoint URL is refused, or None: https (http only to loopback), no
    credentials or fragment, and a host in PAYMESH_WEBHOOK_ALLOWED_HOSTS."""
    if not url or len(url) > MAX_URL_LENGTH:
        return f"must be an absolute URL of at most {MAX_URL_LENGTH} characters"
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "must use https"
    if not host:
        return "must name a host"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return "must use https (http is accepted for loopback hosts only)"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if parts.fragment:
        return "must not have a fragment"
    if not any(host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
               for allowed in allowed_hosts):
        return f"host {host!r} is not in the allowed hosts (PAYMESH_WEBHOOK_ALLOWED_HOSTS)"
    return None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp: int, payload: str) -> str:
    """The Standard Webhooks v1 signature: base64(HMAC-SHA256(key, "id.timestamp.payload"))."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{payload}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload_of(confirmation: Confirmation) -> str:
    """{"type": "payment.applied", "timestamp": ..., "data": <Confirmation in proto3 JSON, field names as in the .proto>}."""
    status = types_pb2.PaymentStatus.Name(confirmation.status).removeprefix("PAYMENT_STATUS_").lower()
    body = {
        "type": f"payment.{status}",
        "timestamp": confirmation.result_time.ToJsonString() if confirmation.HasField("result_time") else None,
        "data": json_format.MessageToDict(confirmation, preserving_proto_field_name=True),
    }
    return json.dumps(body, separators=(",", ":"))


def backoff(attempts: int, settings: ConfirmationSettings) -> float:
    """Seconds before the next attempt: exponential, capped, with equal jitter (half fixed, half random)."""
    ceiling = min(settings.webhook_max_delay, settings.webhook_base_delay * 2 ** (attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class WebhookDispatcher:
    """One task that finds due deliveries in the store and POSTs them, a bounded number at once."""

    def __init__(self, store: Store, settings: ConfirmationSettings):
        self._store = store
        self._settings = settings
        self._wake = asyncio.Event()
        self._in_flight: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout))
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="webhook-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            free = self._settings.webhook_concurrency - len(self._in_flight)
            if free > 0:
                due = await self._store.run(webhook_store.due_deliveries, time.time(), free + len(self._in_flight))
                for row in [row for row in due if (row[0], row[1]) not in self._in_flight][:free]:
                    self._in_flight.add((row[0], row[1]))
                    task = asyncio.get_running_loop().create_task(self._deliver(*row))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            next_due = await self._store.run(webhook_store.next_due_time)
            wait = 1.0 if next_due is None else min(1.0, max(0.02, next_due - time.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _deliver(self, endpoint_id: str, sequence: int, attempts: int, url: str, secret: str,
                       body: bytes) -> None:
        try:
            payload = payload_of(Confirmation.FromString(body))
            message_id, timestamp = f"msg_{sequence}", int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature(secret, message_id, timestamp, payload),
            }
            error = await self._post(url, payload, headers)
            attempts += 1
            if error is None:
                status, next_at = webhook_store.DELIVERED, time.time()
            elif attempts >= self._settings.webhook_max_attempts:
                status, next_at = webhook_store.DEAD_LETTER, time.time()
                logger.warning("webhook dead-lettered", extra={"endpoint_id": endpoint_id, "sequence": sequence,
                                                               "attempts": attempts, "error": error})
            else:
                status, next_at = webhook_store.PENDING, time.time() + backoff(attempts, self._settings)
            await self._store.run(webhook_store.record_attempt, endpoint_id, sequence, status, attempts, next_at,
                                  error or "")
        finally:
            self._in_flight.discard((endpoint_id, sequence))
            self._wake.set()

    async def _post(self, url: str, payload: str, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx; otherwise why not. Redirects are not followed."""
        try:
            async with self._session.post(url, data=payload.encode(), headers=headers,
                                          allow_redirects=False) as response:
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}"[:200]

    async def close(self) -> None:
        for task in [self._loop_task, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._loop_task, *self._tasks] if t], return_exceptions=True)
        if self._session is not None:
            await self._session.close()
