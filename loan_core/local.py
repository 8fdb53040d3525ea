"""A core in this process, on a free loopback port, with real mTLS and its real store (a SQLite
file, or a PostgreSQL database): for tests and scripts that need a core without a subprocess."""

import contextlib
from datetime import date

from bank.loans.v1 import loan_core_service_pb2_grpc
from loan_core.portfolio import PortfolioSettings
from loan_core.rules import ProductRules
from loan_core.server import POLICY, build
from paymesh import server, tls
from paymesh.config import Settings
from paymesh.topology import ROUTER, Identity


@contextlib.asynccontextmanager
async def running_core(rules: ProductRules, settings: Settings, *, count: int = 300, seed: int = 42,
                       as_of: date = date(2026, 11, 27), database_url: str | None = None):
    """Yields the RunningServer; its store is settings.data_dir/<core>.db, or the PostgreSQL
    database of database_url."""
    core = build(rules, PortfolioSettings(seed, count, as_of), database_url)(settings)
    running = await server.start_server(rules.service, settings, core, POLICY)
    try:
        yield running
    finally:
        await running.stop(1.0)


@contextlib.asynccontextmanager
async def core_stub(address: str, settings: Settings, identity: Identity = ROUTER):
    async with tls.channel_for(address, settings.pki_dir, identity) as channel:
        yield loan_core_service_pb2_grpc.LoanCoreServiceStub(channel)
