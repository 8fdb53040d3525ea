"""Shared by the confirmations tests: an in-process ConfirmationService on a real mTLS port."""

import asyncio
import collections
import contextlib
import dataclasses
import time
import urllib.parse

from aiohttp import web
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from bank.confirmations.v1 import confirmations_pb2

from confirmations.config import ConfirmationSettings
from confirmations.server import POLICY, SERVICE, open_store, service_on
from paymesh import tls
from paymesh.server import start_server
from paymesh.topology import OPERATOR, ROUTER, Identity
from tests.harness import health_of

ATM = Identity("channel", "atm")
STORE = Identity("channel", "store")
FAST = ConfirmationSettings(heartbeat_seconds=0.2, webhook_base_delay=0.05, webhook_max_delay=0.2,
                            webhook_max_attempts=4, webhook_timeout=2.0)


@contextlib.asynccontextmanager
async def serving(settings, database_url: str | None = None, **overrides):
    """Yields (address, service); stops both afterwards. database_url: its store on that PostgreSQL
    database (with its lease), else its SQLite file in settings.data_dir."""
    environ = {"PAYMESH_CONFIRMATIONS_DATABASE_URL": database_url} if database_url else {}
    service = service_on(open_store(settings.data_dir, environ), dataclasses.replace(FAST, **overrides))
    running = await start_server(SERVICE, settings, service, POLICY)
    try:
        yield f"127.0.0.1:{running.port}", service
    finally:
        await running.stop(0)


def channel(address, settings, identity):
    return tls.channel_for(address, settings.pki_dir, identity)


__all__ = ["ATM", "STORE", "OPERATOR", "ROUTER", "serving", "channel", "health_of", "until_serving"]


class Receiver:
    """An HTTP server on loopback that records each POST and answers as told: 503 for the first fail_first
    attempts of each webhook-id (or always), after `delay` seconds (every attempt) or 2 s (attempt
    stall_attempt, longer than FAST's timeout); answer(headers, body) may pick the answer itself."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False, stall_attempt: int | None = None,
                 delay: float = 0.0, answer=None):
        self.fail_first, self.always_fail, self.stall_attempt = fail_first, always_fail, stall_attempt
        self.delay, self.answer = delay, answer
        self.attempts: collections.Counter = collections.Counter()
        self.accepted: dict[str, tuple[dict, str]] = {}  # webhook-id -> (headers, body)
        self.log: list[tuple[float, str, int]] = []  # (loop time, webhook-id, HTTP status answered), in order
        self.connections: set = set()  # the sender's (address, port) of each connection POSTs came on

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        message_id = request.headers["webhook-id"]
        self.attempts[message_id] += 1
        self.connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        if self.attempts[message_id] == self.stall_attempt:
            await asyncio.sleep(2)  # longer than the sender's timeout
        if self.delay:
            await asyncio.sleep(self.delay)
        response = self.answer(dict(request.headers), body) if self.answer else None
        if response is None and (self.always_fail or self.attempts[message_id] <= self.fail_first):
            response = web.Response(status=503)
        if response is None or 200 <= response.status < 300:
            self.accepted[message_id] = (dict(request.headers), body)
        response = response or web.Response(status=204)
        self.log.append((asyncio.get_running_loop().time(), message_id, response.status))
        return response

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server), "a started TCPSite listens with an asyncio.Server"
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


def origin(url: str) -> tuple[str]:
    """The allowlist (PAYMESH_WEBHOOK_ALLOWED_HOSTS entries) naming a receiver's scheme, host and port."""
    parts = urllib.parse.urlsplit(url)
    return (f"{parts.scheme}://{parts.hostname}:{parts.port}",)


async def eventually(condition, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def create_endpoint(service, url: str, request_id: str = "r1",
                          max_batch_size: int = 0) -> confirmations_pb2.WebhookEndpoint:
    response = await service.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(
        request_id=request_id, url=url, max_batch_size=max_batch_size))
    return response.endpoint



async def until_serving(address: str, settings, since: float, within: float) -> float:
    """Seconds from `since` (monotonic) until the process says SERVING; fails after `within`."""
    while await health_of(address, settings.pki_dir) != "SERVING":
        assert time.monotonic() - since < within, f"{address} did not serve within {within} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - since
