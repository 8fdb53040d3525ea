"""Webhook delivery: each pending delivery is POSTed as JSON with the Standard
Webhooks headers (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256),
retried with exponential backoff and jitter, dead-lettered after the last attempt.

Only to what the allowlist names (scheme, host and port), checked at creation and
again at every delivery, and only to addresses it allows, checked as they are
resolved for the connection.

Delivery is at least once: the webhook-id ("msg_<sequence>") stays the same on
every retry and replay, so a receiver drops what it has already seen.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import urllib.parse

import aiohttp
from aiohttp.abc import AbstractResolver
from google.protobuf import json_format

from bank.common.v1 import types_pb2
from bank.confirmations.v1.confirmations_pb2 import Confirmation
from confirmations import webhook_store
from confirmations.config import ConfirmationSettings
from paymesh.sqlite import Store

logger = logging.getLogger(__name__)
LOOPBACK_HOSTS = frozenset(["127.0.0.1", "::1", "localhost"])
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"
# What a failed attempt records (last_error is shown to the channel). Every failure without an HTTP answer
# gets the same words, so a channel cannot tell an open port from a closed one; the detail is in the log.
NO_RESPONSE = "no HTTP response from the endpoint (connection failed, closed or timed out)"
ADDRESS_NOT_ALLOWED = "the endpoint's host resolves to an address the allowlist does not allow"
URL_NOT_ALLOWED = "the endpoint URL is no longer on the service's allowlist; nothing was sent"


def parse_origin(entry: str) -> tuple[str, str, int]:
    """("https", "hooks.example.bank", 443) from "https://hooks.example.bank:443"; ValueError otherwise."""
    parts = urllib.parse.urlsplit(entry.strip().lower())
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if (parts.scheme not in DEFAULT_PORTS or not host or port is None or parts.path not in ("", "/")
            or parts.query or parts.fragment or parts.username is not None or "*" in host.removeprefix("*.")):
        raise ValueError(f"PAYMESH_WEBHOOK_ALLOWED_HOSTS entry {entry!r} is not scheme://host:port"
                         " (such as https://hooks.example.bank:443 or https://*.example.bank:443)")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        # Plaintext webhooks never leave the machine.
        raise ValueError(f"PAYMESH_WEBHOOK_ALLOWED_HOSTS entry {entry!r}: http only to 127.0.0.1, ::1 or localhost")
    return parts.scheme, host, port


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%")[0])  # (an IPv6 zone such as %eth0 is not part of the address)
    # ::ffff:127.0.0.1 is 127.0.0.1.
    return (ip.ipv4_mapped or ip) if ip.version == 6 else ip


class Allowlist:
    """The origins (scheme, host, port) webhook URLs may name, and the addresses a delivery may connect to."""

    def __init__(self, entries: tuple[str, ...]):
        self.origins = frozenset(parse_origin(entry) for entry in entries)
        # Addresses off the public internet (loopback, private, link-local, ...) are allowed only as an entry
        # names them (an IP, or localhost for 127.0.0.1 and ::1), on that entry's port: a name on the list
        # that resolves to the mainframe's or the router's port is refused.
        self._named: set[tuple[object, int]] = set()
        for _, host, port in self.origins:
            for address in (("127.0.0.1", "::1") if host == "localhost" else (host,)):
                try:
                    self._named.add((_ip(address), port))
                except ValueError:
                    pass  # a name, not an address

    def url_problem(self, url: str) -> str | None:
        """Why the endpoint URL is refused, or None: http(s), no credentials or fragment, and its scheme,
        host and port an origin of the allowlist."""
        if not url or len(url) > MAX_URL_LENGTH:
            return f"must be an absolute URL of at most {MAX_URL_LENGTH} characters"
        try:
            parts = urllib.parse.urlsplit(url)
            host, port = (parts.hostname or "").lower(), parts.port  # .port raises on a malformed port
        except ValueError:
            return "is not a valid URL"
        if parts.scheme not in DEFAULT_PORTS:
            return "must use https"
        if not host:
            return "must name a host"
        if parts.username is not None or parts.password is not None:
            return "must not carry credentials"
        if parts.fragment:
            return "must not have a fragment"
        port = DEFAULT_PORTS[parts.scheme] if port is None else port
        if not any(scheme == parts.scheme and allowed_port == port
                   and (host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])))
                   for scheme, allowed, allowed_port in self.origins):
            return f"{parts.scheme}://{host}:{port} is not on the allowlist (PAYMESH_WEBHOOK_ALLOWED_HOSTS)"
        return None

    def address_allowed(self, address: str, port: int) -> bool:
        ip = _ip(address)
        return (ip, port) in self._named or (ip.is_global and not ip.is_multicast)


class AddressNotAllowed(OSError):
    """A name resolved to an address the allowlist does not allow (aiohttp wraps OSErrors of resolvers)."""


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver for webhooks: every address a name resolves to must be allowed, and aiohttp
    connects only to the addresses returned here, so what was checked is what is connected to (a name
    that changes its answer between a check and the connect, DNS rebinding, gains nothing)."""

    def __init__(self, allowlist: Allowlist):
        self._allowlist = allowlist
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        results = await self._resolver.resolve(host, port, family)
        refused = [r["host"] for r in results if not self._allowlist.address_allowed(r["host"], port)]
        if refused:
            raise AddressNotAllowed(f"{host} resolves to {', '.join(refused)}, not allowed on port {port}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp: int, payload: str) -> str:
    """The Standard Webhooks v1 signature: base64(HMAC-SHA256(key, "id.timestamp.payload"))."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{payload}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload_of(confirmation: Confirmation) -> str:
    """{"type": "payment.applied", "timestamp": ..., "data": <Confirmation in proto3 JSON,
    field names as in the .proto>}."""
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
        self.allowlist = Allowlist(settings.webhook_allowlist)  # a bad entry stops the service at start
        self._wake = asyncio.Event()
        self._in_flight: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task | None = None

    def start(self) -> None:
        # No DNS cache: each new connection resolves the name again and checks what it gets.
        connector = aiohttp.TCPConnector(resolver=CheckedResolver(self.allowlist), use_dns_cache=False)
        self._session = aiohttp.ClientSession(connector=connector,
                                              timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout))
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
                       previous_secret: str, body: bytes) -> None:
        try:
            payload = payload_of(Confirmation.FromString(body))
            message_id, timestamp = f"msg_{sequence}", int(time.time())
            # During a rotation's overlap both secrets sign (new first), as Standard Webhooks allows, so the
            # receiver may switch secrets whenever it likes within the overlap.
            signatures = [signature(key, message_id, timestamp, payload) for key in (secret, previous_secret) if key]
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": " ".join(signatures),
            }
            # The allowlist may have changed since the endpoint was made: check the stored URL every time.
            error: str | None
            if self.allowlist.url_problem(url):
                error = URL_NOT_ALLOWED
            else:
                error = await self._post(url, payload, headers, endpoint_id, sequence)
            attempts += 1
            if error is None:
                status, next_at = webhook_store.DELIVERED, time.time()
            elif attempts >= self._settings.webhook_max_attempts or error == URL_NOT_ALLOWED:
                # (retrying a URL the running service refuses cannot succeed; a replay can, after a change)
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

    async def _post(self, url: str, payload: str, headers: dict[str, str], endpoint_id: str,
                    sequence: int) -> str | None:
        """None when the receiver answered 2xx; otherwise why not. Redirects are not followed. An IP in the
        URL is not resolved: it passed the allowlist only as an entry naming it."""
        assert self._session is not None, "start() made the session before the dispatcher ran"
        try:
            async with self._session.post(url, data=payload.encode(), headers=headers,
                                          allow_redirects=False) as response:
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            refused = isinstance(getattr(error, "os_error", None), AddressNotAllowed)
            logger.info("webhook attempt failed", extra={"endpoint_id": endpoint_id, "sequence": sequence,
                                                         "error": f"{type(error).__name__}: {error}"[:300]})
            return ADDRESS_NOT_ALLOWED if refused else NO_RESPONSE

    async def close(self) -> None:
        for task in [self._loop_task, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._loop_task, *self._tasks] if t], return_exceptions=True)
        if self._session is not None:
            await self._session.close()
