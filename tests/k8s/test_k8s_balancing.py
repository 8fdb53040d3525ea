"""Headless Services give clients one address per pod; the mesh's channel options
balance calls across all of them (round_robin), so a second replica takes load."""

import grpc

from paymesh import pki, tls
from paymesh.authz import CallerPolicy
from paymesh.server import Handlers, start_server
from paymesh.topology import OPERATOR

SERVICE = "bank.test.v1.Whoami"


def register_answering(name: bytes):
    async def whoami(request: bytes, context) -> bytes:
        return name

    def register(server):
        handler = grpc.method_handlers_generic_handler(SERVICE, {"Get": grpc.unary_unary_rpc_method_handler(whoami)})
        server.add_generic_rpc_handlers([handler])
        return [SERVICE]
    return register


async def test_calls_spread_over_every_resolved_address(settings):
    replicas = [await start_server("core-cash", settings, Handlers(register_answering(name)),
                                   CallerPolicy.only([OPERATOR])) for name in (b"pod-0", b"pod-1")]
    try:
        target = "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)  # as DNS of a headless Service
        mesh_options = (*tls.CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "localhost"))
        balanced = await answers_from(target, settings, mesh_options)
        without = [o for o in mesh_options if o[0] != "grpc.lb_policy_name"]
        unbalanced = await answers_from(target, settings, without)
    finally:
        for replica in replicas:
            await replica.stop(0)
    assert balanced.count(b"pod-0") >= 5 and balanced.count(b"pod-1") >= 5, balanced
    assert len(set(unbalanced)) == 1  # gRPC's default, pick_first: every call to one pod


async def answers_from(target, settings, options, calls=20) -> list[bytes]:
    credentials = tls.channel_credentials(pki.load(settings.pki_dir, OPERATOR))
    async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Get")
        return [await call(b"", timeout=5) for _ in range(calls)]
