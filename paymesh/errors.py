"""Rich gRPC errors (AIP-193): a status code, a sentence, and google.rpc details.

The details travel in the `grpc-status-details-bin` trailer, so a caller in any
language reads the ErrorInfo reason and the BadRequest field violations.
"""

import datetime as dt
from collections.abc import Iterable

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bank.common.v1 import errors_pb2
from paymesh.business_calendar import parse_date

DOMAIN = "paymesh.bank"
_REASON_PREFIX = "ERROR_REASON_"


def reason_name(reason: int) -> str:
    """The ErrorInfo reason string for an ErrorReason value, e.g. "LOAN_NOT_FOUND"."""
    return errors_pb2.ErrorReason.Name(reason).removeprefix(_REASON_PREFIX)


def rich_status(
    code: grpc.StatusCode,
    message: str,
    reason: int,
    violations: Iterable[tuple[str, str]] = (),
    metadata: dict[str, str] | None = None,
    retry_after_seconds: float | None = None,
) -> grpc.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason_name(reason), domain=DOMAIN, metadata=metadata or {})
    status.details.add().Pack(info)
    violations = list(violations)
    if violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
            ]
        )
        status.details.add().Pack(bad_request)
    if retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(retry_after_seconds * 1000))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status)


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, reason: int, **details):
    """Ends the RPC with a rich status; raises, like context.abort."""
    await context.abort_with_status(rich_status(code, message, reason, **details))


async def check_date(context: grpc.aio.ServicerContext, text: str, field: str = "business_date") -> dt.date:
    """The date written YYYY-MM-DD in a request field; else the call ends INVALID_ARGUMENT naming the field."""
    day = parse_date(text)
    if day is None:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field} must be a date written YYYY-MM-DD",
                    errors_pb2.ERROR_REASON_INVALID_FIELD, violations=[(field, f"{text[:20]!r} is not YYYY-MM-DD")])
    return day


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call, for clients and tests."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[str]:
    """The fields of a failed call's BadRequest detail, for clients and tests."""
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields += [violation.field for violation in bad_request.field_violations]
    return fields


def retry_delay(error: grpc.aio.AioRpcError | grpc.RpcError) -> float | None:
    """The RetryInfo delay of a failed call, in seconds (None without one)."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToMilliseconds() / 1000
    return None
