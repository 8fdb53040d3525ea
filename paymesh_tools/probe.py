"""Asks a service whether it can do its work: the gRPC health check over mTLS,
or the link check for the mainframe emulator (which speaks records, not gRPC)."""

import asyncio
import ssl

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paymesh import pki, tls
from paymesh.config import Settings, port_of
from paymesh_tools.textui import format_table
from paymesh.topology import PROBE, SERVICES
from mainframe_bridge.framing import PING, PONG, encode_frame, read_frame

EMULATOR = "mainframe-emulator"


async def grpc_health(target: str, settings: Settings, timeout: float = 2.0) -> str:
    """SERVING, NOT_SERVING, ... or the gRPC status code name when the call itself fails."""
    async with tls.channel_for(target, settings.pki_dir, PROBE) as channel:
        try:
            # types-grpcio-health-checking declares HealthStub without its methods (Check, Watch).
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)  # type: ignore[attr-defined]
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def emulator_health(target: str, settings: Settings, timeout: float = 2.0) -> str:
    host, port = target.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki.ca_path(settings.pki_dir)))
    context.load_cert_chain(pki.cert_path(settings.pki_dir, PROBE), pki.key_path(settings.pki_dir, PROBE))
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=context), timeout)
    except (TimeoutError, OSError):
        return "UNAVAILABLE"
    try:
        writer.write(encode_frame(PING))
        reply = await asyncio.wait_for(read_frame(reader), timeout)
        return "SERVING" if reply == PONG else "NOT_SERVING"
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return "UNAVAILABLE"
    finally:
        writer.close()


async def health_of(service: str, target: str, settings: Settings) -> str:
    if service == EMULATOR:
        return await emulator_health(target, settings)
    return await grpc_health(target, settings)


async def health_table(settings: Settings) -> int:
    """The health of a running mesh at the configured ports, as a table."""
    rows = [("SERVICE", "ADDRESS", "HEALTH")]
    for spec in SERVICES.values():
        address = f"127.0.0.1:{port_of(spec)}"
        rows.append((spec.name, address, await health_of(spec.name, address, settings)))
    print(format_table(rows))
    return 0 if all(r[2] == "SERVING" for r in rows[1:]) else 1


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return asyncio.run(health_table(Settings.from_env()))
