"""A bridge process on PostgreSQL whose database it cannot use: a wrong password, a schema migrated by
a later release, a database not created yet. Each is a clear line in its log (without the password)
at start; the process stays up, health NOT_SERVING (liveness SERVING), opens no link to the mainframe,
and serves once the database is there: never a crash loop."""

import asyncio
import time
import uuid

import grpc
import psycopg

from paymesh.server import LIVENESS, STORE_RETRY_SECONDS
from tests.harness import health_of
from tests.mainframe_bridge.support import start_bridge, start_emulator



async def serving_at(address: str, pki_dir) -> bool:
    try:
        return await health_of(address, pki_dir) == "SERVING"
    except grpc.aio.AioRpcError:
        return False


async def test_a_bridge_whose_database_cannot_be_used_waits_not_serving_and_serves_once_it_exists(
        tmp_path, pki_dir, processes, postgres_server, postgres_url):
    emulator = start_emulator(tmp_path, pki_dir)
    processes.append(emulator)
    with psycopg.connect(postgres_url, autocommit=True) as connection:  # as a later release would leave it
        connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                           " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        connection.execute("INSERT INTO schema_migrations (version, name) VALUES (99, '0099_later.sql')")
    later = f"later_{uuid.uuid4().hex[:12]}"
    cases = {"wrong password": postgres_server.url("postgres", password="not-the-password"),
             "newer schema": postgres_url, "not created yet": postgres_server.url(later)}
    bridges = {case: start_bridge(tmp_path / case.replace(" ", "-"), pki_dir, emulator.address,
                                  PAYMESH_MAINFRAME_BRIDGE_DATABASE_URL=url) for case, url in cases.items()}
    processes.extend(bridges.values())
    for bridge in bridges.values():
        assert (await health_of(bridge.address, pki_dir), await health_of(bridge.address, pki_dir, LIVENESS)) == (
            "NOT_SERVING", "SERVING")
    logs = {case: bridge.log() for case, bridge in bridges.items()}
    assert "password authentication failed" in logs["wrong password"]
    assert "not-the-password" not in logs["wrong password"]
    assert "newer than this release knows (3)" in logs["newer schema"]
    assert f'database \\"{later}\\" does not exist' in logs["not created yet"]
    assert not any("mainframe link open" in log for log in logs.values()), "no link without a store"

    postgres_server.create_database(later)
    created = time.monotonic()
    waiting = bridges["not created yet"]
    port_file = waiting.home / "run" / "mainframe-bridge.port"  # (on port 0 the serving port is a new one)
    while not await serving_at(f"127.0.0.1:{port_file.read_text()}", pki_dir):
        assert time.monotonic() - created < STORE_RETRY_SECONDS + 5, "the bridge did not open its database"
        await asyncio.sleep(0.1)
    assert all(bridge.process.poll() is None for bridge in bridges.values()), "no crash, no restart"
    assert "mainframe link open" in waiting.log()
