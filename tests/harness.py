"""Real processes and real mTLS for tests: start a service on port 0, learn its
port from its port file, talk to it with any identity's certificate."""

import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from paymesh import tls
from paymesh.topology import ROUTER, Identity
from paymesh_tools.launch import ServiceProcess, service_env, start_mesh, start_service, stop_mesh

__all__ = ["ServiceProcess", "service_env", "start_mesh", "start_service", "stop_mesh", "channel", "posting_status",
           "scrape", "sample_value", "write_met_ended_call"]


def channel(address: str, pki_dir: Path, identity: Identity):
    return tls.channel_for(address, pki_dir, identity)


async def posting_status(bridge_address: str, pki_dir: Path, posting_id: str, seconds: float = 10.0) -> int:
    """The posting's status at the bridge, waiting (at most seconds) until it is POSTED; a posting
    still on its way from the router's outbox is NOT_FOUND meanwhile."""
    import asyncio

    from bank.ledger.v1 import ledger_pb2
    from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_api
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


def write_met_ended_call(error: grpc.aio.AioRpcError) -> bool:
    """grpc's Python client reports its own write that met a call the server had already ended (a
    failover test's: UNAVAILABLE, the store lost) as INTERNAL, hiding the server's status (as
    paymesh.authz notes): such a call is to be sent again, as any the server ended."""
    return error.code() == grpc.StatusCode.INTERNAL and 'Failed "execute_batch"' in (error.debug_error_string() or "")


def scrape(port: int) -> dict[str, list]:
    """name -> samples, from a real HTTP GET of /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample_value(samples, name: str, **labels) -> float | None:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, found
    return found[0] if found else None


async def health_of(address: str, pki_dir: Path, service: str = "") -> str:
    """A process's health (of the whole server, or of one service name), as the router's channel or
    Kubernetes' readiness sees it: SERVING, NOT_SERVING."""
    async with tls.channel_for(address, pki_dir, ROUTER) as channel:
        # types-grpcio-health-checking declares HealthStub without its methods (Check, Watch).
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)  # type: ignore[attr-defined]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
