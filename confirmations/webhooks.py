"""Webhook delivery: each pending delivery is POSTed as JSON with the Standard
Webhooks headers (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256),
retried with exponential backoff and jitter, dead-lettered after the last attempt.

Each live endpoint has a lane of its own: its own connections (kept alive), its own
window of POSTs in flight sized to how fast it answers, its own circuit breaker, so
a slow or failing endpoint holds up only itself. An endpoint that opted in gets
several confirmations in one signed POST ("payment.batch"). A payment's deliveries
to one endpoint go one after another (its reversal after its application); other
payments' go in parallel.

Only to what the allowlist names (scheme, host and port), checked at creation and
again at every delivery, and only to addresses it allows, checked as they are
resolved for the connection.

Delivery is at least once: the webhook-id ("msg_<sequence>") stays the same on
every retry and replay, so a receiver drops what it has already seen.
"""

import asyncio
import base64
import email.utils
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
from collections import deque
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver
from google.protobuf import json_format

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmations_pb2
from bank.confirmations.v1.confirmations_pb2 import Confirmation
from confirmations import webhook_store
from confirmations.channels import channel_name
from confirmations.config import ConfirmationSettings
from paymesh import telemetry
from paymesh.aio import wait_set
from paymesh.group_commit import GroupCommit
from paymesh.lease import STORE_LOST, FencedStore
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


def _event(confirmation: Confirmation) -> dict:
    """{"type": "payment.applied", "timestamp": ..., "data": <Confirmation in proto3 JSON, field names as
    in the .proto>}. A revision of a payment's allocation (its `revision` > 0) is "payment.revised"."""
    status = types_pb2.PaymentStatus.Name(confirmation.status).removeprefix("PAYMENT_STATUS_").lower()
    return {
        "type": "payment.revised" if confirmation.revision else f"payment.{status}",
        "timestamp": confirmation.result_time.ToJsonString() if confirmation.HasField("result_time") else None,
        "data": json_format.MessageToDict(confirmation, preserving_proto_field_name=True),
    }


def payload_of(confirmation: Confirmation) -> str:
    """The body of a POST of one confirmation: its event."""
    return json.dumps(_event(confirmation), separators=(",", ":"))


def batch_payload_of(sequences: list[int], confirmations: list[Confirmation], timestamp: int) -> str:
    """The body of a POST of several: {"type": "payment.batch", "timestamp": <when sent>, "data": {"webhooks":
    [{"id": "msg_<sequence>", <the event of one confirmation>}, ...]}}, in sequence order. Each item's id is
    the webhook-id it has when sent alone: receivers drop repeats by it (a retry may group differently)."""
    items = [{"id": f"msg_{sequence}", **_event(confirmation)}
             for sequence, confirmation in zip(sequences, confirmations)]
    body = {"type": "payment.batch", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp)),
            "data": {"webhooks": items}}
    return json.dumps(body, separators=(",", ":"))


def message_id_of(sequences: list[int]) -> str:
    """webhook-id: msg_<sequence> for one confirmation; batch_<first>_<last>_<count> for a batch (in sequence
    order), the same whenever the same confirmations go together."""
    if len(sequences) == 1:
        return f"msg_{sequences[0]}"
    return f"batch_{sequences[0]}_{sequences[-1]}_{len(sequences)}"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def backoff(attempts: int, settings: ConfirmationSettings) -> float:
    """Seconds before the next attempt: exponential, capped, with equal jitter (half fixed, half random)."""
    ceiling = min(settings.webhook_max_delay, settings.webhook_base_delay * 2 ** (attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class Window:
    """How many POSTs an endpoint may have in flight: from 1 to bound, sized to its latency. It grows by one
    for each 2xx while there was more to send than it let out, so it settles where the answers come back as
    fast as deliveries come in: a far endpoint (long round trips that do not slow as more are sent) gets as
    many in flight as its round trip needs, a near one few. It halves on a failure, and shrinks by one when an
    answer takes more than twice the fastest seen lately plus QUEUEING_SECONDS (the receiver queues: more in
    flight would only wait there; the margin keeps this service's own scheduling delays out of it)."""

    QUEUEING_SECONDS = 0.1

    def __init__(self, bound: int):
        self.bound = bound
        self.size = min(bound, 4)
        self.fastest: float | None = None

    def answered(self, seconds: float, wanted_more: bool) -> None:
        # The fastest answer drifts up slowly towards what answers take now, so one early lucky answer
        # does not shrink the window for ever.
        fastest = seconds if self.fastest is None else self.fastest
        self.fastest = min(seconds, fastest + (seconds - fastest) * 0.01)
        if seconds > 2 * self.fastest + self.QUEUEING_SECONDS and self.size > 1:
            self.size -= 1
        elif wanted_more and self.size < self.bound:
            self.size += 1

    def failed(self) -> None:
        self.size = max(1, self.size // 2)


CLOSED = confirmations_pb2.CIRCUIT_STATE_CLOSED
OPEN = confirmations_pb2.CIRCUIT_STATE_OPEN
HALF_OPEN = confirmations_pb2.CIRCUIT_STATE_HALF_OPEN
FAILURES_TO_OPEN = 5


class CircuitBreaker:
    """In front of one endpoint. FAILURES_TO_OPEN failed POSTs in a row, or a 429/503 with Retry-After, open
    it: nothing is sent until retry_at (exponential backoff with jitter, doubling each time it opens again;
    at least what Retry-After asked, at most the longest retry delay). Then HALF_OPEN: one POST tries the
    endpoint; a 2xx closes the circuit, a failure opens it again."""

    def __init__(self, settings: ConfirmationSettings):
        self._settings = settings
        self.state = CLOSED
        self.failures = 0
        self.openings = 0
        self.retry_at = 0.0

    def posts_allowed(self, window: int, now: float) -> int:
        if self.state == OPEN and now >= self.retry_at:
            self.state = HALF_OPEN
        return {CLOSED: window, HALF_OPEN: 1}.get(self.state, 0)

    def succeeded(self) -> bool:
        """True when this closed an open circuit."""
        reopened = self.state != CLOSED
        if self.state == HALF_OPEN or self.state == CLOSED:
            self.state, self.failures, self.openings = CLOSED, 0, 0
        return reopened and self.state == CLOSED

    def failed(self, now: float, retry_after: float | None) -> bool:
        """True when this opened the circuit."""
        self.failures += 1
        if self.state == OPEN or (self.state == CLOSED and self.failures < FAILURES_TO_OPEN and retry_after is None):
            return False
        self.openings += 1
        pause = backoff(self.openings, self._settings)
        if retry_after is not None:
            pause = max(pause, retry_after)
        self.state, self.retry_at = OPEN, now + min(pause, self._settings.webhook_max_delay)
        return True


class Lane:
    """One endpoint's deliveries: a task that reads what is due in sequence order, a little ahead, and keeps
    up to its window of POSTs in flight on connections of its own."""

    def __init__(self, dispatcher: "WebhookDispatcher", endpoint_id: str, channel: int):
        self.endpoint_id = endpoint_id
        self.channel = channel
        self._dispatcher = dispatcher
        self._settings = dispatcher.settings
        self.window = Window(max(1, self._settings.webhook_concurrency))
        self.breaker = CircuitBreaker(self._settings)
        self.wake = asyncio.Event()
        self.pending = 0  # deliveries not yet delivered (refreshed by the dispatcher, for the metric)
        self.in_flight = 0  # POSTs
        self._queued: deque[tuple[int, int, bytes]] = deque()  # read from the store, not yet sent
        self._held: set[int] = set()  # sequences queued or in flight: still PENDING in the store
        self._endpoint: tuple | None = None  # (url, secret, previous_secret, max_batch_size)
        self._posts: set[asyncio.Task] = set()
        # Connections of its own, kept alive: a slow endpoint's pool is never another's. No DNS cache: each new
        # connection resolves the name again and checks what it gets.
        connector = aiohttp.TCPConnector(resolver=CheckedResolver(dispatcher.allowlist), use_dns_cache=False,
                                         limit=self.window.bound, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector,
                                              timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout))
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"webhook-lane-{endpoint_id}")

    async def _run(self) -> None:
        try:
            while True:
                self.wake.clear()
                if not await self._fill():
                    return  # the endpoint was deleted
                now = time.time()
                if self.breaker.state == OPEN:
                    wait = self.breaker.retry_at - now
                elif self._queued or self.in_flight:
                    wait = 1.0  # an answer wakes it
                else:
                    # Nothing sendable now: until the next retry is due. One due but not read waits behind an
                    # earlier delivery of its payment that is not delivered yet: a new answer or commit wakes it.
                    next_due = await self._dispatcher.store.run(webhook_store.next_due_time, self.endpoint_id)
                    wait = 1.0 if next_due is None or next_due <= now else next_due - now
                await wait_set(self.wake, min(1.0, max(0.01, wait)))
        finally:
            for post in self._posts:
                post.cancel()
            await asyncio.gather(*self._posts, return_exceptions=True)
            await self._session.close()

    async def _fill(self) -> bool:
        """Starts POSTs up to what the breaker and the window allow, reading ahead from the store when fewer
        than a window's worth are queued; False when the endpoint is gone."""
        now = time.time()
        free = self.breaker.posts_allowed(self.window.size, now) - self.in_flight
        if free <= 0:
            return True
        batch = self._endpoint[3] if self._endpoint else 1
        if len(self._queued) < free * batch:
            # Read a window's worth ahead (so an answer starts the next POST without a query), within bounds.
            want = min(MAX_QUEUED, 2 * self.window.size * batch) - len(self._queued)
            self._endpoint, rows = await self._dispatcher.store.run(
                webhook_store.lane_work, self.endpoint_id, now, list(self._held), want)
            if self._endpoint is None:
                return False
            batch = self._endpoint[3]
            for row in rows:
                self._queued.append(row)
                self._held.add(row[0])
            free = self.breaker.posts_allowed(self.window.size, time.time()) - self.in_flight
        while free > 0 and self._queued:
            rows = [self._queued.popleft() for _ in range(min(batch, len(self._queued)))]
            self.in_flight += 1
            free -= 1
            post = asyncio.get_running_loop().create_task(self._deliver(rows, wanted_more=bool(self._queued)))
            self._posts.add(post)
            post.add_done_callback(self._posts.discard)
        return True

    async def _deliver(self, rows: list[tuple[int, int, bytes]], wanted_more: bool) -> None:
        answered = False
        try:
            assert self._endpoint is not None, "a POST starts only after the endpoint was read"
            url, secret, previous_secret, _ = self._endpoint
            sequences = [sequence for sequence, _, _ in rows]
            message_id, timestamp = message_id_of(sequences), int(time.time())
            confirmations = [Confirmation.FromString(body) for _, _, body in rows]
            payload = (payload_of(confirmations[0]) if len(rows) == 1
                       else batch_payload_of(sequences, confirmations, timestamp))
            # During a rotation's overlap both secrets sign (new first), as Standard Webhooks allows, so the
            # receiver may switch secrets whenever it likes within the overlap.
            signatures = [signature(key, message_id, timestamp, payload) for key in (secret, previous_secret) if key]
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": " ".join(signatures),
            }
            started = time.monotonic()
            # The allowlist may have changed since the endpoint was made: check the stored URL every time.
            retry_after: float | None = None
            error: str | None
            if self._dispatcher.allowlist.url_problem(url):
                error = URL_NOT_ALLOWED
            else:
                error, retry_after = await self._post(url, payload, headers, message_id)
            # The answer frees its place in the window at once; its rows stay held (not read again) until
            # the answer is recorded, so the commit's fsync does not slow the endpoint.
            self.in_flight -= 1
            answered = True
            self.wake.set()
            await self._record(rows, error, retry_after, time.monotonic() - started, wanted_more)
        finally:
            if not answered:
                self.in_flight -= 1
            for sequence, _, _ in rows:
                self._held.discard(sequence)
            self.wake.set()

    async def _record(self, rows, error: str | None, retry_after: float | None, seconds: float,
                      wanted_more: bool) -> None:
        now = time.time()
        if error is None:
            self.window.answered(seconds, wanted_more)
            if self.breaker.succeeded():
                logger.info("webhook endpoint answers again: circuit closed", extra={"endpoint_id": self.endpoint_id})
        elif error != URL_NOT_ALLOWED:
            self.window.failed()
            if self.breaker.failed(now, retry_after):
                logger.warning("webhook endpoint failing: circuit open", extra={
                    "endpoint_id": self.endpoint_id, "error": error,
                    "retry_in_seconds": round(self.breaker.retry_at - now, 3)})
        outcomes = []
        for sequence, attempts, _ in rows:
            attempts += 1
            if error is None:
                status, next_at = webhook_store.DELIVERED, now
            elif attempts >= self._settings.webhook_max_attempts or error == URL_NOT_ALLOWED:
                # (retrying a URL the running service refuses cannot succeed; a replay can, after a change)
                status, next_at = webhook_store.DEAD_LETTER, now
                logger.warning("webhook dead-lettered", extra={"endpoint_id": self.endpoint_id, "sequence": sequence,
                                                               "attempts": attempts, "error": error})
            else:
                status, next_at = webhook_store.PENDING, now + max(backoff(attempts, self._settings), retry_after or 0)
            outcomes.append((status, attempts, next_at, error or "", self.endpoint_id, sequence))
        for status in {outcome[0] for outcome in outcomes}:
            telemetry.count_webhook_deliveries(channel_name(self.channel),
                                               _OUTCOME_OF[status], sum(1 for o in outcomes if o[0] == status))
        await self._dispatcher.outcomes.submit(outcomes)

    async def _post(self, url: str, payload: str, headers: dict[str, str],
                    message_id: str) -> tuple[str | None, float | None]:
        """(None when the receiver answered 2xx, otherwise why not; the Retry-After of a 429 or 503). Redirects
        are not followed. An IP in the URL is not resolved: it passed the allowlist only as an entry naming it."""
        try:
            async with self._session.post(url, data=payload.encode(), headers=headers,
                                          allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None, None
                retry_after = (retry_after_seconds(response.headers.get("retry-after"), time.time())
                               if response.status in (429, 503) else None)
                return f"HTTP {response.status}", retry_after
        except (aiohttp.ClientError, TimeoutError) as error:
            refused = isinstance(getattr(error, "os_error", None), AddressNotAllowed)
            logger.info("webhook attempt failed", extra={"endpoint_id": self.endpoint_id, "webhook_id": message_id,
                                                         "error": f"{type(error).__name__}: {error}"[:300]})
            return (ADDRESS_NOT_ALLOWED if refused else NO_RESPONSE), None

    def close(self) -> None:
        self.task.cancel()


# Deliveries one lane holds read ahead of its POSTs at most (memory, and the store's NOT IN list).
MAX_QUEUED = 2000


class WebhookDispatcher:
    """A lane per live endpoint, and one group commit that records the answers of every lane's POSTs."""

    def __init__(self, store: Store | FencedStore, settings: ConfirmationSettings):
        self.store = store
        self.settings = settings
        self.allowlist = Allowlist(settings.webhook_allowlist)  # a bad entry stops the service at start
        self.lanes: dict[str, Lane] = {}
        # Many POSTs' answers in one transaction: one fsync, not one per delivery.
        self.outcomes: GroupCommit[list[tuple], None] = GroupCommit(
            store, webhook_store.record_attempts, name="webhook-outcomes")
        self._refresh = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhook-dispatcher")

    def wake(self, channels: Iterable[int] | None = None) -> None:
        """New deliveries (for these channels; None: any, and endpoints may have been made or deleted)."""
        if channels is None:
            self._refresh.set()
        wanted = None if channels is None else set(channels)
        for lane in self.lanes.values():
            if wanted is None or lane.channel in wanted:
                lane.wake.set()

    def lane(self, endpoint_id: str) -> Lane | None:
        return self.lanes.get(endpoint_id)

    def deleted(self, endpoint_id: str) -> None:
        """The endpoint was deleted: its lane stops now, with what it had read ahead and its POSTs in flight."""
        lane = self.lanes.pop(endpoint_id, None)
        if lane is not None:
            lane.close()

    async def _run(self) -> None:
        """Keeps a lane for each live endpoint, and each lane's backlog for the metric (once a second)."""
        if self.settings.webhook_concurrency <= 0:
            return  # (a dispatcher that sends nothing, for tests of what is pending)
        while True:
            self._refresh.clear()
            try:
                await self._refresh_lanes()
            except STORE_LOST as failed:  # (a database failover): the lanes are looked at again next time
                logger.warning("webhook endpoints not read: the store cannot be used just now",
                               extra={"error": type(failed).__name__})
            await wait_set(self._refresh, 1.0)

    async def _refresh_lanes(self) -> None:
        """A lane for each live endpoint (one whose lane ended, on a store error say, gets a new one)."""
        live = await self.store.run(webhook_store.live_endpoints)
        for endpoint_id in [e for e in self.lanes if e not in live or self.lanes[e].task.done()]:
            self.lanes.pop(endpoint_id).close()
        for endpoint_id, channel in live.items():
            if endpoint_id not in self.lanes:
                lane = self.lanes[endpoint_id] = Lane(self, endpoint_id, channel)
                telemetry.observe_queue_depth(f"confirmations.webhooks.{endpoint_id}", _pending_of(lane))
        backlogs = await self.store.run(webhook_store.backlogs, list(self.lanes))
        for endpoint_id, (count, _) in backlogs.items():
            if endpoint_id in self.lanes:
                self.lanes[endpoint_id].pending = count

    async def stop(self) -> None:
        """The lanes stop (their POSTs in flight cut: those deliveries stay PENDING, sent again by whoever
        dispatches next); start() begins again. For a process that lost its lease."""
        if self._task is not None:
            self._task.cancel()
        lanes = [lane.task for lane in self.lanes.values()]
        for lane in self.lanes.values():
            lane.close()
        await asyncio.gather(*[t for t in [self._task, *lanes] if t], return_exceptions=True)
        self._task, self.lanes = None, {}

    async def close(self) -> None:
        await self.stop()
        await self.outcomes.close()


# A delivery's new status as paymesh_webhook_deliveries_total's outcome: a PENDING one failed and waits for a retry.
_OUTCOME_OF = {webhook_store.DELIVERED: "delivered", webhook_store.PENDING: "failed",
               webhook_store.DEAD_LETTER: "dead_lettered"}


def _pending_of(lane: Lane):
    # (a deleted endpoint's gauge reads 0 from then on)
    return lambda: lane.pending if not lane.task.done() else 0
