"""Two confirmation services on one PostgreSQL database (in this process, real mTLS): the one holding
the lease serves, the other is its standby, NOT_SERVING and refusing every call UNAVAILABLE; the
active one stopped gracefully hands the lease over at once and the standby goes on with the same log.
A holder whose lease was taken over writes nothing more (the fence), ends its subscriptions and steps
down; a process whose database cannot be opened waits NOT_SERVING, and serves once it can."""

import asyncio
import time
import uuid

import grpc
import psycopg
import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as pb
from confirmations import client
from confirmations.server import open_store
from paymesh.errors import error_info
from paymesh.postgres import DatabaseUnavailable
from paymesh.server import LIVENESS, STORE_RETRY_SECONDS
from tests.confirmations.support import (ATM, OPERATOR, ROUTER, Receiver, channel, create_endpoint, eventually,
                                         health_of, origin, serving, until_serving)
from tests.harness import start_service

DAY = "2026-11-27"


def confirmations(prefix: str, count: int) -> list:
    return [client.confirmation(f"{prefix}{n}", types_pb2.CHANNEL_ATM, 100 + n, business_date=DAY)
            for n in range(count)]


def refused_by_the_standby(error: grpc.aio.AioRpcError) -> bool:
    info = error_info(error)
    return error.code() == grpc.StatusCode.UNAVAILABLE and info is not None and info.metadata["role"] == "standby"


async def test_the_standby_is_not_serving_refuses_calls_and_takes_over_when_the_active_one_stops(
        settings, postgres_url, monkeypatch):
    monkeypatch.setenv("PAYMESH_LEASE_POLL_SECONDS", "0.05")
    first = serving(settings, postgres_url)
    active_at, _ = await first.__aenter__()
    try:
        async with serving(settings, postgres_url) as (standby_at, _):
            assert (await health_of(active_at, settings.pki_dir), await health_of(standby_at, settings.pki_dir)) == (
                "SERVING", "NOT_SERVING")
            async with channel(active_at, settings, ROUTER) as router:
                acks = await client.publish(client.stub(router), confirmations("a", 10))
            assert [a.sequence for a in acks] == list(range(1, 11))

            async with channel(standby_at, settings, ROUTER) as router, \
                    channel(standby_at, settings, ATM) as atm, channel(standby_at, settings, OPERATOR) as operator:
                for call in (client.publish(client.stub(router), confirmations("b", 1)),
                             client.stub(atm).Subscribe(pb.SubscribeRequest(
                                 start_position=pb.START_POSITION_BEGINNING)).read(),
                             client.stub(atm).ListWebhookEndpoints(pb.ListWebhookEndpointsRequest()),
                             client.stub(operator).SummarizeConfirmations(
                                 pb.SummarizeConfirmationsRequest(business_date=DAY))):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call
                    assert refused_by_the_standby(refused.value), refused.value

                stopped = time.monotonic()
                await first.__aexit__(None, None, None)  # graceful: the lease is given up
                first = None
                await until_serving(standby_at, settings, stopped, within=2.0)
                again = await client.publish(client.stub(router), confirmations("a", 10) + confirmations("b", 5))
                assert [(a.sequence, a.duplicate) for a in again] == (
                    [(n, True) for n in range(1, 11)] + [(n, False) for n in range(11, 16)]), \
                    "the replays keep their sequences; the log goes on from the other's head"
                replayed = await client.collect(client.stub(atm).Subscribe(pb.SubscribeRequest(
                    start_position=pb.START_POSITION_BEGINNING)), 15)
                assert [c.payment_id for c in replayed] == [f"a{n}" for n in range(10)] + [f"b{n}" for n in range(5)]
    finally:
        if first is not None:
            await first.__aexit__(None, None, None)


async def test_a_holder_whose_lease_was_taken_writes_nothing_ends_its_subscriptions_and_steps_down(
        settings, postgres_url):
    async with serving(settings, postgres_url) as (address, _):
        async with channel(address, settings, ROUTER) as router, channel(address, settings, ATM) as atm:
            await client.publish(client.stub(router), confirmations("a", 5))
            subscription = client.stub(atm).Subscribe(pb.SubscribeRequest(
                consumer_name="reconciler", start_position=pb.START_POSITION_BEGINNING))
            assert len(await client.collect(subscription, 5)) == 5
            # Another process takes the lease, as a standby would once this one's lapsed (it was paused, say).
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                connection.execute("UPDATE service_lease SET holder = 'another', epoch = epoch + 1,"
                                   " expires_at = now() + interval '1 hour' WHERE name = 'confirmations'")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.publish(client.stub(router), confirmations("b", 3))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, "the fence refused the write"
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await subscription.read()
            assert refused_by_the_standby(ended.value), ended.value
            assert "subscribe again" in ended.value.details()
            assert await health_of(address, settings.pki_dir) == "NOT_SERVING"
        with psycopg.connect(postgres_url) as connection:
            assert connection.execute("SELECT count(*), max(sequence) FROM confirmation").fetchone() == (5, 5)


async def test_the_webhook_deliveries_the_holder_had_not_sent_are_sent_by_its_standby_once_it_takes_over(
        settings, postgres_url, monkeypatch):
    monkeypatch.setenv("PAYMESH_LEASE_POLL_SECONDS", "0.05")
    receiver = Receiver()
    async with receiver as url:
        # (webhook_concurrency=0: the holder's dispatcher sends nothing, so every delivery is still pending)
        first = serving(settings, postgres_url, webhook_concurrency=0, webhook_allowlist=origin(url))
        active_at, _ = await first.__aenter__()
        try:
            async with serving(settings, postgres_url, webhook_allowlist=origin(url)) as (standby_at, _):
                async with channel(active_at, settings, ATM) as atm, channel(active_at, settings, ROUTER) as router:
                    await create_endpoint(client.stub(atm), url)
                    await client.publish(client.stub(router), confirmations("w", 20))
                await asyncio.sleep(0.3)
                assert receiver.attempts == {}, "the standby sends nothing"
                await first.__aexit__(None, None, None)
                first = None

                async def all_arrived():
                    return len(receiver.accepted) == 20
                await eventually(all_arrived)
        finally:
            if first is not None:
                await first.__aexit__(None, None, None)
    assert sorted(receiver.accepted) == sorted(f"msg_{n}" for n in range(1, 21))


async def test_a_database_migrated_by_a_later_release_is_refused_clearly(postgres_url, tmp_path):
    environ = {"PAYMESH_CONFIRMATIONS_DATABASE_URL": postgres_url}
    open_store(tmp_path, environ).close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("INSERT INTO schema_migrations (version, name) VALUES (99, '0099_later.sql')")
    with pytest.raises(DatabaseUnavailable, match="schema is at version 99, newer than this release knows"):
        open_store(tmp_path, environ)


async def test_a_process_whose_database_cannot_be_opened_waits_not_serving_and_serves_once_it_exists(
        tmp_path, settings, postgres_server):
    name = f"later_{uuid.uuid4().hex[:12]}"
    wrong_password = postgres_server.url("postgres", password="not-the-password")
    refused = start_service("confirmations", tmp_path / "refused", settings.pki_dir,
                            PAYMESH_CONFIRMATIONS_DATABASE_URL=wrong_password)
    waiting = start_service("confirmations", tmp_path / "waiting", settings.pki_dir,
                            PAYMESH_CONFIRMATIONS_DATABASE_URL=postgres_server.url(name))
    try:
        for process in (refused, waiting):
            pki = settings.pki_dir
            assert (await health_of(process.address, pki), await health_of(process.address, pki, LIVENESS)
                    ) == ("NOT_SERVING", "SERVING")
        assert "password authentication failed" in refused.log() and "not-the-password" not in refused.log()
        assert f'database \\"{name}\\" does not exist' in waiting.log()
        postgres_server.create_database(name)
        created = time.monotonic()
        port_file = waiting.home / "run" / "confirmations.port"  # the serving port is a new one (port 0)
        while True:
            try:
                if await health_of(f"127.0.0.1:{port_file.read_text()}", settings.pki_dir) == "SERVING":
                    break
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() - created < STORE_RETRY_SECONDS + 5, "the service did not open its database"
            await asyncio.sleep(0.1)
        assert refused.process.poll() is None and waiting.process.poll() is None, "no crash, no restart"
    finally:
        refused.kill()
        waiting.kill()
