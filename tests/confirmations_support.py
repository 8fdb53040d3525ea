"""Shared by the confirmations tests: an in-process ConfirmationService on a real mTLS port."""

import contextlib
import dataclasses

from confirmations.config import ConfirmationSettings
from confirmations.server import POLICY, SERVICE, ConfirmationService
from paymesh import tls
from paymesh.server import start_server
from paymesh.topology import OPERATOR, ROUTER, Identity

ATM = Identity("channel", "atm")
STORE = Identity("channel", "store")
FAST = ConfirmationSettings(heartbeat_seconds=0.2, webhook_base_delay=0.05, webhook_max_delay=0.2,
                            webhook_max_attempts=4, webhook_timeout=2.0)


@contextlib.asynccontextmanager
async def serving(settings, **overrides):
    """Yields (address, service); stops both afterwards."""
    service = ConfirmationService(settings.data_dir, dataclasses.replace(FAST, **overrides))
    running = await start_server(SERVICE, settings, service, POLICY)
    try:
        yield f"127.0.0.1:{running.port}", service
    finally:
        await running.stop(0)


def channel(address, settings, identity):
    return tls.channel_for(address, settings.pki_dir, identity)


__all__ = ["ATM", "STORE", "OPERATOR", "ROUTER", "serving", "channel"]
