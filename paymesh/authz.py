"""Who may call what: a server interceptor that checks the caller's certificate
identity against the service's policy and answers PERMISSION_DENIED otherwise.

Health is open to every holder of a mesh certificate (the handshake already
proved that); reflection to the operator only; everything else must be allowed by name.
"""

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import grpc

from bank.common.v1 import errors_pb2, types_pb2
from paymesh.errors import abort
from paymesh.tls import peer_identity
from paymesh.topology import CHANNEL_NAMES, OPERATOR, ROUTER_CHANNELS, Identity

log = logging.getLogger(__name__)
DRAIN_SECONDS = 0.5  # how long a refused stream's requests are read before the refusal
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
# Reflection lists every method a service has: a map for an attacker, so the operator's only.
REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


@dataclass(frozen=True)
class CallerPolicy:
    """Identities allowed on every method, unless a method (full name) says otherwise."""

    default: frozenset[Identity]
    per_method: Mapping[str, frozenset[Identity]] = field(default_factory=dict)

    def allowed(self, method: str) -> frozenset[Identity]:
        if method.startswith(REFLECTION):
            return frozenset([OPERATOR])
        return self.per_method.get(method, self.default)

    @classmethod
    def only(cls, callers: Iterable[Identity]) -> "CallerPolicy":
        return cls(frozenset(callers))


class Bulkhead:
    """What a calling router may hand over: its bulkhead's channels' items only. A server that takes
    payments, postings or confirmations from routers refuses each item of another channel group
    (the rest of the message goes on), so a bulkhead taken over cannot reach another group's money."""

    def __init__(self, context: grpc.aio.ServicerContext):
        self.caller = peer_identity(context)
        carried = ROUTER_CHANNELS.get(self.caller, frozenset()) if self.caller is not None else frozenset()
        self.foreign = frozenset(CHANNEL_NAMES) - carried  # empty for the local mesh's one router

    def refusal(self, channel: int) -> errors_pb2.Rejection | None:
        """None when the caller may hand over an item of this channel; else the item's rejection.
        channel is a bank.common.v1.Channel value; a reversal's comes from a core's SQLite row, a plain int."""
        if channel not in self.foreign:
            return None
        name = CHANNEL_NAMES[cast(types_pb2.Channel, channel)]  # one of the channels: foreign holds only those
        message = f"{self.caller} does not carry {name} payments: another router bulkhead does"
        log.warning("item of another bulkhead refused", extra={"caller": str(self.caller), "channel": name})
        return errors_pb2.Rejection(reason=errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED, message=message,
                                    field_violations=[errors_pb2.FieldViolation(field="channel", description=message)])


class CallerCheck(grpc.aio.ServerInterceptor):
    def __init__(self, policy: CallerPolicy):
        self._policy = policy
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # per method

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        # The guarded handler is built once per method, not on every call.
        known = self._guarded.get(method)
        if known is None or known[0] is not handler:
            known = self._guarded[method] = handler, _guarded(handler, self._check_for(method))
        return known[1]

    def _check_for(self, method: str) -> Callable:
        allowed = self._policy.allowed(method)

        async def check(context: grpc.aio.ServicerContext, requests=None) -> None:
            caller = peer_identity(context)
            if caller not in allowed:
                if requests is not None:
                    await _drain(requests)
                await abort(
                    context,
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{caller or 'a caller without a mesh identity'} may not call {method}",
                    errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED,
                    metadata={"method": method},
                )

        return check


async def _drain(requests, seconds: float = DRAIN_SECONDS) -> None:
    """Reads what a refused caller is still sending (briefly) before the refusal: grpc's
    Python client reports a write that meets an already finished call as INTERNAL, hiding
    the status the server sent; a caller that has sent everything sees PERMISSION_DENIED."""
    try:
        async with asyncio.timeout(seconds):
            async for _ in requests:
                pass
    except (TimeoutError, grpc.RpcError):
        pass


def _guarded(handler: grpc.RpcMethodHandler, check: Callable) -> grpc.RpcMethodHandler:
    """The same handler, running check(context) before its behavior."""
    serializers = dict(
        request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )
    if handler.unary_unary or handler.stream_unary:
        behavior = handler.unary_unary or handler.stream_unary

        async def unary_response(request, context):
            await check(context, request if handler.stream_unary else None)
            return await behavior(request, context)

        factory = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return factory(unary_response, **serializers)

    behavior = handler.unary_stream or handler.stream_stream

    async def stream_response(request, context):
        await check(context, request if handler.stream_stream else None)
        result = behavior(request, context)
        if inspect.isasyncgen(result):
            async for response in result:
                yield response
        else:  # a coroutine writing with context.write()
            await result

    factory = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return factory(stream_response, **serializers)
