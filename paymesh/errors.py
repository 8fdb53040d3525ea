"""Rich gRPC errors (AIP-193): a status code, a sentence, and google.rpc details.

The details travel in the `grpc-status-details-bin` trailer, so a caller in any
language reads the ErrorInfo reason and the BadRequest field violations.
"""

import datetime as dt
from collections.abc import Iterable
from typing import NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bank.common.v1 import errors_pb2
from paymesh.business_calendar import parse_date

DOMAIN = "paymesh.bank"
_REASON_PREFIX = "ERROR_REASON_"
_Code = grpc.StatusCode
# The one map from a refusal's reason to its gRPC status (AIP-193), for every service. A reason
# not named here is the state of a loan, payment or day forbidding what was asked: FAILED_PRECONDITION.
STATUS_OF_REASON = {
    errors_pb2.ERROR_REASON_INVALID_FIELD: _Code.INVALID_ARGUMENT,
    errors_pb2.ERROR_REASON_WRONG_LOAN_TYPE: _Code.INVALID_ARGUMENT,
    errors_pb2.ERROR_REASON_AMOUNT_INVALID: _Code.INVALID_ARGUMENT,
    errors_pb2.ERROR_REASON_AMOUNT_OVER_CHANNEL_LIMIT: _Code.INVALID_ARGUMENT,
    errors_pb2.ERROR_REASON_ENDPOINT_URL_INVALID: _Code.INVALID_ARGUMENT,
    errors_pb2.ERROR_REASON_CONTROL_TOTAL_MISMATCH: _Code.INVALID_ARGUMENT,
    errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED: _Code.ALREADY_EXISTS,
    errors_pb2.ERROR_REASON_PAYMENT_ARCHIVED: _Code.ALREADY_EXISTS,
    errors_pb2.ERROR_REASON_LOAN_NOT_FOUND: _Code.NOT_FOUND,
    errors_pb2.ERROR_REASON_PAYMENT_NOT_FOUND: _Code.NOT_FOUND,
    errors_pb2.ERROR_REASON_CONSUMER_NOT_FOUND: _Code.NOT_FOUND,
    errors_pb2.ERROR_REASON_ENDPOINT_NOT_FOUND: _Code.NOT_FOUND,
    errors_pb2.ERROR_REASON_POSTING_NOT_FOUND: _Code.NOT_FOUND,
    errors_pb2.ERROR_REASON_BATCH_NOT_FOUND: _Code.NOT_FOUND,
    errors_pb2.ERROR_REASON_CALLER_NOT_ALLOWED: _Code.PERMISSION_DENIED,
    errors_pb2.ERROR_REASON_OPERATION_NOT_ALLOWED: _Code.PERMISSION_DENIED,
    errors_pb2.ERROR_REASON_TOKEN_INVALID: _Code.UNAUTHENTICATED,
    errors_pb2.ERROR_REASON_RATE_LIMITED: _Code.RESOURCE_EXHAUSTED,
    errors_pb2.ERROR_REASON_QUOTA_EXCEEDED: _Code.RESOURCE_EXHAUSTED,
    errors_pb2.ERROR_REASON_CURSOR_OUT_OF_RANGE: _Code.OUT_OF_RANGE,
    errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE: _Code.UNAVAILABLE,
}


def status_of(reason: errors_pb2.ErrorReason) -> grpc.StatusCode:
    return STATUS_OF_REASON.get(reason, _Code.FAILED_PRECONDITION)


class Refused(Exception):
    """A request, or one item of a stream, refused for a reason the caller can act on; nothing was
    written. field names the one request field at fault; violations lists several (field, description).
    code overrides the reason's status where the moment, not the reason, decides it (a day still
    draining is FAILED_PRECONDITION though its reason is DOWNSTREAM_UNAVAILABLE)."""

    def __init__(self, reason: errors_pb2.ErrorReason, message: str, field: str = "", *,
                 violations: Iterable[tuple[str, str]] = (), code: grpc.StatusCode | None = None,
                 retry_after: float | None = None, metadata: dict[str, str] | None = None,
                 quota: tuple[str, str] | None = None):
        super().__init__(message)
        self.reason, self.message = reason, message
        self.violations = [(field, message)] if field else list(violations)
        self.code = code or status_of(reason)
        self.retry_after, self.metadata = retry_after, metadata or {}
        self.quota = quota  # (subject, description) of the limit a QUOTA_EXCEEDED refusal hit

    @classmethod
    def of(cls, rejection: errors_pb2.Rejection) -> "Refused":
        """The refusal a stream item's Rejection stands for, to answer an online call with."""
        return cls(rejection.reason, rejection.message,
                   violations=[(v.field, v.description) for v in rejection.field_violations])

    def rejection(self) -> errors_pb2.Rejection:
        """The refusal as one stream item's answer."""
        return errors_pb2.Rejection(reason=self.reason, message=self.message, field_violations=[
            errors_pb2.FieldViolation(field=f, description=d) for f, d in self.violations])

    async def abort(self, context: grpc.aio.ServicerContext, **metadata: str) -> NoReturn:
        """Ends the call with this refusal's rich status; raises, like context.abort."""
        await abort(context, self.code, self.message, self.reason, violations=self.violations,
                    metadata={**self.metadata, **metadata} or None, retry_after_seconds=self.retry_after,
                    quota=self.quota)
        raise AssertionError("unreachable: abort raises")


def reason_name(reason: errors_pb2.ErrorReason) -> str:
    """The ErrorInfo reason string for an ErrorReason value, e.g. "LOAN_NOT_FOUND"."""
    return errors_pb2.ErrorReason.Name(reason).removeprefix(_REASON_PREFIX)


def rich_status(
    code: grpc.StatusCode,
    message: str,
    reason: errors_pb2.ErrorReason,
    violations: Iterable[tuple[str, str]] = (),
    metadata: dict[str, str] | None = None,
    retry_after_seconds: float | None = None,
    quota: tuple[str, str] | None = None,
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
    if quota is not None:
        status.details.add().Pack(error_details_pb2.QuotaFailure(
            violations=[error_details_pb2.QuotaFailure.Violation(subject=quota[0], description=quota[1])]))
    if retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(retry_after_seconds * 1000))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status)


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str,
                reason: errors_pb2.ErrorReason, **details) -> NoReturn:
    """Ends the RPC with a rich status; raises, like context.abort."""
    await context.abort_with_status(rich_status(code, message, reason, **details))


async def abort_as(context: grpc.aio.ServicerContext, error: grpc.aio.AioRpcError) -> NoReturn:
    """Ends the call with the status another service answered, its details (ErrorInfo with its
    metadata, BadRequest, RetryInfo) as they came: the caller sees the service's own refusal."""
    status = _status_of_call(error)
    if status is None:
        await context.abort(error.code(), error.details() or "")
    else:
        await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable: abort raises")


async def check_date(context: grpc.aio.ServicerContext, text: str, field: str = "business_date") -> dt.date:
    """The date written YYYY-MM-DD in a request field; else the call ends INVALID_ARGUMENT naming the field."""
    day = parse_date(text)
    if day is None:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field} must be a date written YYYY-MM-DD",
                    errors_pb2.ERROR_REASON_INVALID_FIELD, violations=[(field, f"{text[:20]!r} is not YYYY-MM-DD")])
    return day


def _status_of_call(error: grpc.aio.AioRpcError | grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc Status a failed call's trailers carry, if any."""
    # grpc_status's stub takes a grpc.Call only; from_call reads code(), details() and trailing_metadata(),
    # which an AioRpcError has as well (and a failed sync call's RpcError is a grpc.Call at run time).
    return rpc_status.from_call(error)  # type: ignore[arg-type]


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call, for clients and tests."""
    status = _status_of_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[str]:
    """The fields of a failed call's BadRequest detail, for clients and tests."""
    return [field for field, _ in bad_request(error)]


def bad_request(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of a failed call's BadRequest detail."""
    status = _status_of_call(error)
    found = []
    for detail in status.details if status else ():
        request = error_details_pb2.BadRequest()
        if detail.Unpack(request):
            found += [(violation.field, violation.description) for violation in request.field_violations]
    return found


def quota_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[tuple[str, str]]:
    """(subject, description) of a failed call's QuotaFailure detail, for clients and tests."""
    status = _status_of_call(error)
    found = []
    for detail in status.details if status else ():
        failure = error_details_pb2.QuotaFailure()
        if detail.Unpack(failure):
            found += [(violation.subject, violation.description) for violation in failure.violations]
    return found


def retry_delay(error: grpc.aio.AioRpcError | grpc.RpcError) -> float | None:
    """The RetryInfo delay of a failed call, in seconds (None without one)."""
    status = _status_of_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToMilliseconds() / 1000
    return None
