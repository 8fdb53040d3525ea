"""The shared runtime: the calendar, SQLite, mTLS and revocation, tracing, metrics, every service's process.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: calendar, core, metrics_setup."""

import dataclasses
import datetime as dt

import pytest

from loan_core import server as core_server
from loan_core.portfolio import PortfolioSettings
from paymesh import telemetry
from paymesh.business_calendar import BusinessCalendar
from paymesh.server import start_server
from paymesh_tools.products import RULES_OF_CORE


@pytest.fixture
def calendar() -> BusinessCalendar:
    return BusinessCalendar()


@pytest.fixture(scope="module")
def metrics_setup(tmp_path_factory, pki_dir):
    """This test process's meter provider (one per process, as in a service), scraped on a real port."""
    from paymesh.config import Settings

    settings = dataclasses.replace(Settings.from_env(), home=tmp_path_factory.mktemp("metrics"), metrics_port=0)
    setup = telemetry.setup_metrics("metrics-test", settings)
    yield setup
    setup.shutdown()


@pytest.fixture
async def core(settings):
    portfolio = PortfolioSettings(seed=1, count=5, as_of=dt.date(2026, 11, 27))
    core = core_server.build(RULES_OF_CORE["core-cash"], portfolio)(settings)
    running = await start_server("core-cash", settings, core, core_server.POLICY, port=0)
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)
