"""Real processes and real mTLS for tests: start a service on port 0, learn its
port from its port file, talk to it with any identity's certificate."""

import time
from pathlib import Path

from paymesh import tls
from paymesh.topology import Identity
from paymesh_tools.launch import ServiceProcess, service_env, start_mesh, start_service, stop_mesh

__all__ = ["ServiceProcess", "service_env", "start_mesh", "start_service", "stop_mesh", "channel"]


def channel(address: str, pki_dir: Path, identity: Identity):
    return tls.channel_for(address, pki_dir, identity)


async def posting_status(bridge_address: str, pki_dir: Path, posting_id: str, seconds: float = 10.0) -> int:
    """The posting's status at the bridge, waiting (at most seconds) until it is POSTED; a posting
    still on its way from the router's outbox is NOT_FOUND meanwhile."""
    import asyncio

    import grpc
    from bank.ledger.v1 import ledger_pb2, mainframe_bridge_service_pb2 as bridge_api
    from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
    from paymesh.topology import OPERATOR

    status = ledger_pb2.POSTING_STATUS_UNSPECIFIED
    deadline = time.monotonic() + seconds
    async with tls.channel_for(bridge_address, pki_dir, OPERATOR) as ch:
        stub = bridge_grpc.MainframeBridgeServiceStub(ch)
        while status != ledger_pb2.POSTING_STATUS_POSTED and time.monotonic() < deadline:
            try:
                status = (await stub.GetPostingStatus(bridge_api.GetPostingStatusRequest(posting_id=posting_id))).status
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.05)
    return status
