"""What one caller may hold open and what its connection may do (OWASP API4: unrestricted resource
consumption), on a real mesh whose agent may hold 3 streams and 2 uploads, and each channel 3
subscriptions: one channel opening its limit + 50 of each kind is served exactly its limit; a raw
HTTP/2 client's ping flood is ended with GOAWAY, a rapid reset burst is absorbed; meanwhile another
channel pays as usual and no service's memory runs away."""

import asyncio
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_api, confirmation_service_pb2_grpc as conf_grpc
from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc
from payment_router.channel_policy import DEFAULT_POLICY_FILE
from paymesh import tls
from paymesh.errors import error_info, quota_violations
from paymesh.topology import Identity
from paymesh_tools.simulate_day import batch_requests
from tests.channel_calls import AS_OF, ENV, open_loans, order
from tests.harness import start_mesh, stop_mesh
from tests.security.support import identity_context

STREAMS, UPLOADS, SUBSCRIPTIONS = 3, 2, 3  # the agent's open StreamPayments and UploadBatch; any channel's Subscribe
OVER = 50  # calls opened past each limit
AGENT, STORE = Identity("channel", "agent"), Identity("channel", "store")
# Every service's resident memory stays under half the 512 Mi a pod may use (k8s/components/hardened-pod).
RSS_BOUND_MIB = 256
APPLIED = types_pb2.PAYMENT_STATUS_APPLIED


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, pki_dir):
    home = tmp_path_factory.mktemp("abuse")
    policy = home / "channels.toml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text().replace(
        "[agent]\n", f"[agent]\nmax_open_streams = {STREAMS}\nmax_open_uploads = {UPLOADS}\n", 1))
    services = start_mesh(home, pki_dir, PAYMESH_CHANNEL_POLICY=str(policy),
                          PAYMESH_CONFIRMATIONS_MAX_SUBSCRIPTIONS=str(SUBSCRIPTIONS),
                          PAYMESH_CONFIRMATIONS_HEARTBEAT_SECONDS="0.5", **ENV)
    yield services
    stop_mesh(services)


def rss_mib(mesh) -> dict[str, float]:
    """Each service process's resident memory (VmRSS in /proc/<pid>/status), MiB."""
    sizes = {}
    for name, service in mesh.items():
        status = Path(f"/proc/{service.process.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        sizes[name] = kib / 1024
    return sizes


class StorePayments:
    """The store pays online, one payment after another, each answer timed."""

    def __init__(self, mesh, pki_dir):
        self.address, self.pki_dir = mesh["payment-router"].address, pki_dir
        self.loan = open_loans(types_pb2.LOAN_TYPE_CASH)[20]
        self.sent = 0

    async def pay(self, count: int) -> list[float]:
        latencies = []
        async with tls.channel_for(self.address, self.pki_dir, STORE) as ch:
            stub = api_grpc.PaymentServiceStub(ch)
            for _ in range(count):
                self.sent += 1
                started = time.monotonic()
                reply = await stub.SubmitPayment(api.SubmitPaymentRequest(
                    payment=order(f"abuse-store-{self.sent}", self.loan, 100)), timeout=10)
                latencies.append(time.monotonic() - started)
                assert reply.payment.status == APPLIED
        return latencies

    async def meanwhile(self, attack: Awaitable) -> tuple[object, list[float]]:
        """Pays every 50 ms for as long as attack runs; the attack's result and the latencies."""
        task = asyncio.ensure_future(attack)
        latencies: list[float] = []
        while not task.done():
            latencies += await self.pay(1)
            await asyncio.sleep(0.05)
        return await task, latencies


async def first_answers(calls: list, first: Callable[[object], Awaitable], ended: int) -> list[asyncio.Task]:
    """first(call) of every call at once; returns once `ended` of them have finished (at most 15 s),
    and half a second more for any other that would."""
    tasks = [asyncio.ensure_future(first(call)) for call in calls]
    async with asyncio.timeout(15):
        while sum(t.done() for t in tasks) < ended:
            await asyncio.wait([t for t in tasks if not t.done()], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.sleep(0.5)
    return tasks


def refusals(tasks: list[asyncio.Task]) -> list[grpc.aio.AioRpcError]:
    errors = [t.exception() for t in tasks if t.done()]
    return [e for e in errors if isinstance(e, grpc.aio.AioRpcError)]


def assert_over_quota(errors: list[grpc.aio.AioRpcError], subject: str, limit: str) -> None:
    assert len(errors) == OVER, [e.code() for e in errors]
    for error in errors:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        info = error_info(error)
        assert info is not None and info.reason == "QUOTA_EXCEEDED"
        assert quota_violations(error) == [(subject, limit)]


async def test_one_channel_opening_its_limit_and_50_more_of_each_kind_is_served_its_limit(mesh, pki_dir):
    """One ATM certificate opened 4,000 idle Subscribe and 4,000 idle StreamPayments: nothing refused
    them; the router and confirmations grew by some 90 MiB each."""
    store = StorePayments(mesh, pki_dir)
    await store.pay(3)  # warm: the store's connection and its loan in the core's cache
    usual = await store.pay(10)
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[21]
    async with tls.channel_for(mesh["payment-router"].address, pki_dir, AGENT) as router, \
            tls.channel_for(mesh["confirmations"].address, pki_dir, AGENT) as confirmations:
        payments = api_grpc.PaymentServiceStub(router)
        streams = [payments.StreamPayments(timeout=60) for _ in range(STREAMS + OVER)]
        stream_reads = await first_answers(streams, lambda call: call.read(), OVER)
        uploads = [payments.UploadBatch(timeout=60) for _ in range(UPLOADS + OVER)]
        upload_answers = await first_answers(uploads, lambda call: call, OVER)
        subscribe = conf_grpc.ConfirmationServiceStub(confirmations).Subscribe
        subscriptions = [subscribe(conf_api.SubscribeRequest(start_position=conf_api.START_POSITION_NOW), timeout=60)
                         for _ in range(SUBSCRIPTIONS + OVER)]
        # A subscription served answers with its first heartbeat (0.5 s); every one ends its first wait.
        heartbeats = await first_answers(subscriptions, lambda call: call.read(), SUBSCRIPTIONS + OVER)

        assert_over_quota(refusals(stream_reads), "agent", f"at most {STREAMS} open StreamPayments calls at once")
        assert_over_quota(refusals(upload_answers), "agent", f"at most {UPLOADS} open UploadBatch calls at once")
        assert_over_quota(refusals(heartbeats), "channel agent",
                          f"at most {SUBSCRIPTIONS} open Subscribe calls at once")
        assert sum(not t.done() for t in stream_reads) == STREAMS  # held open, waiting for orders
        assert sum(not t.done() for t in upload_answers) == UPLOADS
        assert sum(t.done() and t.exception() is None and t.result().HasField("heartbeat") for t in heartbeats) \
            == SUBSCRIPTIONS

        # Everything held: another channel pays within its usual latency, no service's memory runs away.
        during = await store.pay(10)
        assert statistics.median(during) < 3 * statistics.median(usual) + 0.1, (usual, during)
        sizes = rss_mib(mesh)
        assert max(sizes.values()) < RSS_BOUND_MIB, sizes

        # What was served works: each stream pays, each upload is applied.
        for n, (call, read) in enumerate(zip(streams, stream_reads)):
            if not read.done():
                await call.write(api.StreamPaymentsRequest(payment=order(f"abuse-stream-{n}", loan, 100)))
                assert (await read).payment.status == APPLIED
                await call.done_writing()
        for n, (call, answer) in enumerate(zip(uploads, upload_answers)):
            if not answer.done():
                for request in batch_requests(f"abuse-file-{n}", AS_OF, [order(f"abuse-line-{n}", loan, 100)]):
                    await call.write(request)
                await call.done_writing()
                assert (await answer).summary.applied_count == 1
        for call in subscriptions:
            call.cancel()


class RawHttp2:
    """HTTP/2 frame by frame (the h2 package) over TLS with a channel's certificate: what no gRPC
    library would send. Blocking; run it in a thread."""

    def __init__(self, address: str, pki_dir: Path, identity: Identity):
        context = identity_context(pki_dir, identity)
        context.set_alpn_protocols(["h2"])
        host, port = address.rsplit(":", 1)
        self.socket = context.wrap_socket(socket.create_connection((host, int(port)), timeout=10),
                                          server_hostname="localhost")
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.connection.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.socket.sendall(self.connection.data_to_send())

    def events(self, seconds: float, until: type[h2.events.Event] = h2.events.ConnectionTerminated) -> list:
        """What the server sends within seconds, until an event of type until or the connection's end."""
        events: list = []
        self.socket.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not any(isinstance(e, until) for e in events):
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # reset after the GOAWAY
                break
            if not data:
                break
            events += self.connection.receive_data(data)
            if self.connection.data_to_send():
                self.flush()  # SETTINGS and PING acks
        return events

    def closed_by_server(self, seconds: float) -> bool:
        """Whether the server closes the connection within seconds (anything it sends meanwhile is read)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if not self.socket.recv(65536):
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False

    def close(self) -> None:
        self.socket.close()


def ping_flood(address: str, pki_dir: Path, pings: int = 100) -> tuple[list, bool]:
    """pings PINGs in one write, with no stream open; what the server answers, and whether it then
    closes the connection."""
    client = RawHttp2(address, pki_dir, STORE)
    try:
        for n in range(pings):
            client.connection.ping(n.to_bytes(8, "big"))
        client.flush()
        return client.events(10), client.closed_by_server(5)
    finally:
        client.close()


def rapid_reset(address: str, pki_dir: Path, streams: int) -> list:
    """streams StreamPayments opened and at once reset (HEADERS then RST_STREAM), then one PING;
    what the server answers until that PING's ack."""
    client = RawHttp2(address, pki_dir, AGENT)
    headers = [(":method", "POST"), (":scheme", "https"), (":authority", "localhost"),
               (":path", "/bank.payments.v1.PaymentService/StreamPayments"),
               ("content-type", "application/grpc"), ("te", "trailers")]
    try:
        for n in range(streams):
            stream_id = client.connection.get_next_available_stream_id()
            client.connection.send_headers(stream_id, headers)
            client.connection.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            if n % 100 == 99:
                client.flush()
        client.connection.ping(b"after!!!")
        client.flush()
        return client.events(30, until=h2.events.PingAckReceived)
    finally:
        client.close()


async def test_a_ping_flood_is_ended_with_goaway_and_another_channel_pays_throughout(mesh, pki_dir):
    address = mesh["payment-router"].address
    store = StorePayments(mesh, pki_dir)

    async def floods(seconds: float) -> list[tuple[list, bool]]:
        """Connection after connection, each flooding, for seconds (at most 200 connections)."""
        answers: list[tuple[list, bool]] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds and len(answers) < 200:
            answers.append(await asyncio.to_thread(ping_flood, address, pki_dir))
        return answers

    answers, during = await store.meanwhile(floods(1.5))
    for events, closed in answers:
        # gRPC's keepalive enforcement (paymesh/tls.py SERVER_OPTIONS): a ping within 10 s of the last
        # is a strike; past max_ping_strikes the connection is ended. (The pings of one read are all
        # acked first: gRPC acts on the strikes once it has parsed what it read.)
        ended = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert len(ended) == 1, events
        assert ended[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert ended[0].additional_data == b"too_many_pings"
        assert closed
    assert len(during) >= 3  # every one APPLIED (StorePayments checks)
    await store.pay(3)  # and after
    assert mesh["payment-router"].process.poll() is None


async def test_a_rapid_reset_burst_is_absorbed_and_another_channel_pays_throughout(mesh, pki_dir):
    """The "rapid reset" pattern (CVE-2023-44487): streams opened and cancelled at once, many, on one
    connection. gRPC frees each reset stream as it reads it, so they never pile up against
    max_concurrent_streams: the connection is not ended (grpcio 1.85), and no stream slot leaks."""
    address = mesh["payment-router"].address
    store = StorePayments(mesh, pki_dir)
    await store.pay(1)
    before = rss_mib(mesh)["payment-router"]
    events, during = await store.meanwhile(asyncio.to_thread(rapid_reset, address, pki_dir, 20_000))
    assert any(isinstance(e, h2.events.PingAckReceived) for e in events)  # still answering, not ended
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert len(during) >= 3
    assert rss_mib(mesh)["payment-router"] - before < 32
    # Not one of the agent's 3 stream slots was left taken by the reset streams.
    loan = open_loans(types_pb2.LOAN_TYPE_CASH)[22]
    async with tls.channel_for(address, pki_dir, AGENT) as ch:
        streams = [api_grpc.PaymentServiceStub(ch).StreamPayments(timeout=30) for _ in range(STREAMS)]
        for n, call in enumerate(streams):
            await call.write(api.StreamPaymentsRequest(payment=order(f"after-reset-{n}", loan, 100)))
            assert (await call.read()).payment.status == APPLIED
            await call.done_writing()
    await store.pay(3)


def test_the_mesh_clients_keepalive_keeps_within_the_servers_ping_policy_and_the_limits_fit_a_connection():
    """A client pinging more often than the servers allow is ended GOAWAY too_many_pings, streams
    and all; a connection taking fewer streams than a caller's limits would queue calls in the client
    instead of refusing them RESOURCE_EXHAUSTED."""
    from confirmations.config import ConfirmationSettings
    from payment_router.channel_policy import ChannelPolicy

    client, server = dict(tls.CHANNEL_OPTIONS), dict(tls.SERVER_OPTIONS)
    assert client["grpc.keepalive_time_ms"] >= server["grpc.http2.min_ping_interval_without_data_ms"]
    assert server["grpc.keepalive_permit_without_calls"] == client["grpc.keepalive_permit_without_calls"] == 1
    held_at_router = ChannelPolicy.max_open_streams + ChannelPolicy.max_open_uploads
    assert server["grpc.max_concurrent_streams"] > max(held_at_router, ConfirmationSettings.max_subscriptions) + OVER
