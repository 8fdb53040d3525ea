"""Webhook security (issue 23), against real HTTP receivers and TCP listeners on loopback: the allowlist
names scheme, host and port; every address a name resolves to is checked at delivery (DNS rebinding);
a stored URL the allowlist no longer names gets nothing; last_error never tells an open port from a
closed one; a deleted endpoint stays deleted; secrets rotate with an overlap of two signatures."""

import asyncio
import socket
import time

import grpc
import pytest
from grpc_status import rpc_status
from standardwebhooks import Webhook, WebhookVerificationError

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb, confirmations_pb2
from confirmations import client, webhooks
from confirmations.config import ConfirmationSettings
from confirmations.server import ConfirmationService
from paymesh.errors import error_info, field_violations
from tests.confirmations.support import (ATM, ROUTER, STORE, Receiver, channel, create_endpoint, eventually, origin,
                                         serving)

DEAD = confirmations_pb2.DELIVERY_STATUS_DEAD_LETTER
DELIVERED = confirmations_pb2.DELIVERY_STATUS_DELIVERED


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


class Listener:
    """A TCP port on loopback that is not HTTP: it counts connections and closes them at once, or says
    nothing (silent); closed=True is a port nobody listens on."""

    def __init__(self, silent: bool = False, closed: bool = False):
        self.silent, self.closed, self.connections = silent, closed, 0

    async def _accept(self, reader, writer) -> None:
        self.connections += 1
        if self.silent:
            await reader.read()  # until the sender gives up
        writer.close()

    async def __aenter__(self) -> int:
        if self.closed:
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()  # the port is free again: nothing listens there
            self._server = None
            return port
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        if self._server is not None:
            self._server.close()


async def _deliveries(service, endpoint_id: str,
                      status: confirmations_pb2.DeliveryStatus = confirmations_pb2.DELIVERY_STATUS_UNSPECIFIED):
    return (await service.ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(
        endpoint_id=endpoint_id, status=status))).deliveries


async def test_the_allowlist_names_scheme_host_and_port(settings):
    """The default allowlist (http://127.0.0.1:8080, http://localhost:8080) lets no URL reach the mesh's
    own loopback ports: the old one (hosts only) accepted the mainframe emulator's port."""
    async with serving(settings) as (address, _), channel(address, settings, ATM) as atm:
        service = client.stub(atm)
        refused = []
        for url in ["http://127.0.0.1:50090/", "http://127.0.0.1:50051/hook", "http://localhost:50081/x",
                    "http://127.0.0.1/hook", "https://127.0.0.1:8080/hook", "http://[::1]:8080/hook"]:
            refused.append(await _refused(create_endpoint(service, url, f"r-{len(refused)}")))
        accepted = await create_endpoint(service, "http://127.0.0.1:8080/hook", "r-ok")
    assert [(e.code(), error_info(e).reason, field_violations(e)) for e in refused] == [
        (grpc.StatusCode.INVALID_ARGUMENT, "ENDPOINT_URL_INVALID", ["url"])] * 6
    assert "http://127.0.0.1:50090 is not on the allowlist" in refused[0].details()
    assert accepted.url == "http://127.0.0.1:8080/hook"


def test_allowlist_entries_must_name_scheme_host_and_port(settings, monkeypatch):
    """PAYMESH_WEBHOOK_ALLOWED_HOSTS in the old format (hosts only) stops the service at start, as does
    plaintext http to a host off the machine."""
    for value in ["127.0.0.1,localhost", "https://hooks.example.bank", "http://hooks.example.bank:80",
                  "https://hooks.example.bank:443/path", "https://*x.example.bank:443"]:
        monkeypatch.setenv("PAYMESH_WEBHOOK_ALLOWED_HOSTS", value)
        with pytest.raises(ValueError, match="PAYMESH_WEBHOOK_ALLOWED_HOSTS entry"):
            ConfirmationService(settings.data_dir, ConfirmationSettings.from_env())
    monkeypatch.setenv("PAYMESH_WEBHOOK_ALLOWED_HOSTS", " https://Hooks.Example.Bank:443, https://*.bank.example:8443,"
                       "http://127.0.0.1:9000")
    allowlist = webhooks.Allowlist(ConfirmationSettings.from_env().webhook_allowlist)
    assert allowlist.origins == {("https", "hooks.example.bank", 443), ("https", "*.bank.example", 8443),
                                 ("http", "127.0.0.1", 9000)}
    assert allowlist.url_problem("https://hooks.example.bank/in") is None  # 443 is https' port
    assert allowlist.url_problem("https://a.b.bank.example:8443/in") is None
    assert allowlist.url_problem("https://bank.example:8443/in")  # subdomains only
    assert allowlist.url_problem("http://127.0.0.1:9001/in")


async def test_a_name_resolving_to_loopback_is_never_connected_to(settings, monkeypatch):
    """DNS rebinding: names on the allowlist that resolve (at delivery) to a loopback port, alone or
    beside a public address, fail without a single connection; the old code connected."""
    listener = Listener()
    async with listener as port:
        real_getaddrinfo = socket.getaddrinfo
        answers = {"rebind.bank.example": ["127.0.0.1"], "mixed.bank.example": ["8.8.8.8", "127.0.0.1"]}

        def fake_dns(host, *args, **kwargs):
            name = host.rstrip(".") if isinstance(host, str) else host
            if name in answers:
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[name]]
            return real_getaddrinfo(host, *args, **kwargs)
        monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
        # (127.0.0.1 named on another port does not make this one allowed)
        allow = (f"https://*.bank.example:{port}", f"http://127.0.0.1:{port ^ 1}")
        async with serving(settings, webhook_allowlist=allow, webhook_max_attempts=2) as (address, _), \
                channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoints = [await create_endpoint(service, f"https://{name}:{port}/hook", name) for name in answers]
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

            async def all_dead():
                return all([await _deliveries(service, e.endpoint_id, DEAD) for e in endpoints])
            await eventually(all_dead)
            dead = [(await _deliveries(service, e.endpoint_id, DEAD))[0] for e in endpoints]
    assert listener.connections == 0
    assert [(d.attempts, d.last_error) for d in dead] == [(2, webhooks.ADDRESS_NOT_ALLOWED)] * 2


async def test_a_name_the_allowlist_names_with_its_loopback_port_is_delivered_to(settings):
    """localhost on the allowlist stands for 127.0.0.1 and ::1 on that port: the address check passes."""
    receiver = Receiver()
    async with receiver as url:
        local_url = url.replace("127.0.0.1", "localhost")
        async with serving(settings, webhook_allowlist=origin(local_url)) as (address, _), \
                channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            endpoint = await create_endpoint(client.stub(atm), local_url)
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

            async def arrived():
                return "msg_1" in receiver.accepted
            await eventually(arrived)
    headers, body = receiver.accepted["msg_1"]
    assert Webhook(endpoint.signing_secret).verify(body, headers)["data"]["payment_id"] == "p1"


async def test_a_stored_url_the_allowlist_no_longer_names_gets_nothing(settings):
    """Made while allowed; after a restart with an allowlist without it, its delivery is dead-lettered at
    the first attempt with a clear error and nothing is sent; once allowed again, a replay delivers."""
    receiver = Receiver()
    async with receiver as url:
        async with serving(settings, webhook_allowlist=origin(url)) as (address, _), \
                channel(address, settings, ATM) as atm:
            endpoint = await create_endpoint(client.stub(atm), url)
        async with serving(settings, webhook_allowlist=("https://hooks.bank.example:443",)) as (address, _), \
                channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

            async def dead():
                return await _deliveries(service, endpoint.endpoint_id, DEAD)
            await eventually(dead)
            refused = (await dead())[0]
        assert receiver.attempts == {}
        async with serving(settings, webhook_allowlist=origin(url)) as (address, _), \
                channel(address, settings, ATM) as atm:
            service = client.stub(atm)
            await service.ReplayWebhookDeliveries(pb.ReplayWebhookDeliveriesRequest(endpoint_id=endpoint.endpoint_id))

            async def delivered():
                return await _deliveries(service, endpoint.endpoint_id, DELIVERED)
            await eventually(delivered)
    assert (refused.attempts, refused.last_error) == (1, webhooks.URL_NOT_ALLOWED)
    assert list(receiver.accepted) == ["msg_1"]


async def test_last_error_does_not_tell_an_open_port_from_a_closed_one(settings):
    """A closed port, a port that accepts and hangs up, and one that accepts and says nothing get the same
    last_error, which names no port (the old code's told them apart: a port scanner)."""
    async with Listener(closed=True) as closed, Listener() as hangs_up, Listener(silent=True) as silent:
        ports = [closed, hangs_up, silent]
        allow = tuple(f"http://127.0.0.1:{port}" for port in ports)
        async with serving(settings, webhook_allowlist=allow, webhook_max_attempts=2,
                           webhook_timeout=0.5) as (address, _), \
                channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
            service = client.stub(atm)
            endpoints = [await create_endpoint(service, f"http://127.0.0.1:{port}/hook", f"r{port}") for port in ports]
            await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

            async def all_dead():
                return all([await _deliveries(service, e.endpoint_id, DEAD) for e in endpoints])
            await eventually(all_dead)
            errors = [(await _deliveries(service, e.endpoint_id, DEAD))[0].last_error for e in endpoints]
    assert errors == [webhooks.NO_RESPONSE] * 3
    assert not any(str(port) in error for port in ports for error in errors)


async def test_a_deleted_endpoint_stays_deleted(settings):
    """Its request_id again (same URL or another) is FAILED_PRECONDITION, without its secret; the old code
    answered the deleted endpoint and its secret."""
    async with serving(settings) as (address, _), channel(address, settings, ATM) as atm:
        service = client.stub(atm)
        endpoint = await create_endpoint(service, "http://127.0.0.1:8080/hook")
        await service.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id))
        errors = [await _refused(create_endpoint(service, "http://127.0.0.1:8080/hook")),
                  await _refused(create_endpoint(service, "http://localhost:8080/other"))]
        listed = await service.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest())
        fresh = await create_endpoint(service, "http://127.0.0.1:8080/hook", "r2")
    for error in errors:
        assert (error.code(), error_info(error).reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                            "IDEMPOTENCY_KEY_REUSED")
        assert "was deleted" in error.details() and endpoint.endpoint_id in error.details()
        assert endpoint.signing_secret not in str(rpc_status.from_call(error))
    assert list(listed.endpoints) == []
    assert fresh.endpoint_id != endpoint.endpoint_id and fresh.signing_secret.startswith("whsec_")


async def test_a_retried_create_answers_the_same_endpoint_without_its_secret(settings):
    async with serving(settings) as (address, _), channel(address, settings, ATM) as atm:
        service = client.stub(atm)
        endpoint = await create_endpoint(service, "http://127.0.0.1:8080/hook")
        retried = await create_endpoint(service, "http://127.0.0.1:8080/hook")
    assert endpoint.signing_secret.startswith("whsec_")
    assert (retried.endpoint_id, retried.url, retried.signing_secret) == (endpoint.endpoint_id, endpoint.url, "")


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap_then_alone(settings):
    receiver = Receiver()
    async with receiver as url, serving(settings, webhook_allowlist=origin(url)) as (address, _), \
            channel(address, settings, ATM) as atm, channel(address, settings, ROUTER) as router:
        service, publisher = client.stub(atm), client.stub(router)

        async def deliver(payment_id: str, sequence: int) -> tuple[dict, str]:
            await client.publish(publisher, [client.confirmation(payment_id, types_pb2.CHANNEL_ATM)])

            async def arrived():
                return f"msg_{sequence}" in receiver.accepted
            await eventually(arrived)
            return receiver.accepted[f"msg_{sequence}"]

        async def rotate(overlap: int) -> pb.RotateWebhookSecretResponse:
            return await service.RotateWebhookSecret(pb.RotateWebhookSecretRequest(
                endpoint_id=endpoint.endpoint_id, overlap_seconds=overlap))

        endpoint = await create_endpoint(service, url)
        first = endpoint.signing_secret
        before = await deliver("p1", 1)
        rotated = await rotate(3)
        during = await deliver("p2", 2)
        expire = rotated.previous_secret_expire_time.ToNanoseconds() / 1e9
        await asyncio.sleep(max(0.0, expire - time.time()) + 0.2)
        after = await deliver("p3", 3)
        ended = await rotate(0)
        ended_at = time.time()
        at_once = await deliver("p4", 4)
        listed = await service.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest())
    second, third = rotated.endpoint.signing_secret, ended.endpoint.signing_secret
    assert second.startswith("whsec_") and len({first, second, third}) == 3
    assert (rotated.endpoint.endpoint_id, rotated.endpoint.url) == (endpoint.endpoint_id, url)
    assert abs(expire - (time.time() + 3)) < 5 and abs(ended.previous_secret_expire_time.ToNanoseconds() / 1e9
                                                          - ended_at) < 2

    def verifies(secret: str, delivery: tuple[dict, str]) -> bool:
        try:
            Webhook(secret).verify(delivery[1], delivery[0])
            return True
        except WebhookVerificationError:
            return False

    assert verifies(first, before) and len(before[0]["webhook-signature"].split(" ")) == 1
    # During the overlap: two signatures, the new secret's first, and a receiver verifies with either.
    headers, body = during
    new_signature = webhooks.signature(second, "msg_2", int(headers["webhook-timestamp"]), body)
    old_signature = webhooks.signature(first, "msg_2", int(headers["webhook-timestamp"]), body)
    assert headers["webhook-signature"] == f"{new_signature} {old_signature}"
    assert verifies(second, during) and verifies(first, during)
    # After it: the new one only.
    assert len(after[0]["webhook-signature"].split(" ")) == 1
    assert verifies(second, after) and not verifies(first, after)
    # overlap_seconds 0 ends the replaced secret at once.
    assert len(at_once[0]["webhook-signature"].split(" ")) == 1
    assert verifies(third, at_once) and not verifies(second, at_once) and not verifies(first, at_once)
    assert [e.signing_secret for e in listed.endpoints] == [""]


async def test_only_the_channels_own_live_endpoint_rotates(settings):
    """Another channel's endpoint is NOT_FOUND like an unknown or deleted one, and keeps its secret; an
    overlap beyond 7 days or negative is INVALID_ARGUMENT on overlap_seconds."""
    receiver = Receiver()
    async with receiver as url, serving(settings, webhook_allowlist=origin(url)) as (address, _), \
            channel(address, settings, ATM) as atm, channel(address, settings, STORE) as store, \
            channel(address, settings, ROUTER) as router:
        service = client.stub(atm)
        endpoint = await create_endpoint(service, url)
        gone = await create_endpoint(service, url, "r-gone")
        await service.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(endpoint_id=gone.endpoint_id))
        not_found = [await _refused(stub.RotateWebhookSecret(pb.RotateWebhookSecretRequest(
                         endpoint_id=endpoint_id, overlap_seconds=60)))
                     for stub, endpoint_id in [(client.stub(store), endpoint.endpoint_id),
                                               (service, "we_unknown"), (service, gone.endpoint_id)]]
        out_of_range = [await _refused(service.RotateWebhookSecret(pb.RotateWebhookSecretRequest(
                            endpoint_id=endpoint.endpoint_id, overlap_seconds=overlap)))
                        for overlap in (7 * 24 * 3600 + 1, -1)]
        await client.publish(client.stub(router), [client.confirmation("p1", types_pb2.CHANNEL_ATM)])

        async def arrived():
            return "msg_1" in receiver.accepted
        await eventually(arrived)
    assert [(e.code(), error_info(e).reason) for e in not_found] == [
        (grpc.StatusCode.NOT_FOUND, "ENDPOINT_NOT_FOUND")] * 3
    assert [(e.code(), field_violations(e)) for e in out_of_range] == [
        (grpc.StatusCode.INVALID_ARGUMENT, ["overlap_seconds"])] * 2
    headers, body = receiver.accepted["msg_1"]
    assert " " not in headers["webhook-signature"]
    Webhook(endpoint.signing_secret).verify(body, headers)


async def test_an_unset_overlap_keeps_the_old_secret_a_day(settings):
    """overlap_seconds is optional: unset is the usual day, unlike an explicit 0."""
    receiver = Receiver()
    async with receiver as url, serving(settings, webhook_allowlist=origin(url)) as (address, _), \
            channel(address, settings, ATM) as atm:
        service = client.stub(atm)
        endpoint = await create_endpoint(service, url)
        rotated = await service.RotateWebhookSecret(pb.RotateWebhookSecretRequest(endpoint_id=endpoint.endpoint_id))
    assert abs(rotated.previous_secret_expire_time.ToNanoseconds() / 1e9 - (time.time() + 86400)) < 10
