"""The loan engine and the three cores: schedules, allocation, properties, the service, crashes.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: core."""

import pytest

from loan_core.local import core_stub, running_core
from paymesh_tools.products import RULES_OF_CORE


@pytest.fixture
async def core(settings):
    async with running_core(RULES_OF_CORE["core-cash"], settings, count=300) as running:
        async with core_stub(f"127.0.0.1:{running.port}", settings) as stub:
            yield stub
