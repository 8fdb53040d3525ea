from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_FIELD: _ClassVar[ErrorReason]
    ERROR_REASON_IDEMPOTENCY_KEY_REUSED: _ClassVar[ErrorReason]
    ERROR_REASON_LOAN_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_WRONG_LOAN_TYPE: _ClassVar[ErrorReason]
    ERROR_REASON_CURRENCY_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_AMOUNT_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_AMOUNT_OVER_CHANNEL_LIMIT: _ClassVar[ErrorReason]
    ERROR_REASON_LOAN_PAID_OFF: _ClassVar[ErrorReason]
    ERROR_REASON_PARTIAL_PAYMENT_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_PAYMENT_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_ALREADY_REVERSED: _ClassVar[ErrorReason]
    ERROR_REASON_CALLER_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_OPERATION_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_RATE_LIMITED: _ClassVar[ErrorReason]
    ERROR_REASON_TOKEN_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_DOWNSTREAM_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_UNBALANCED_MOVEMENT: _ClassVar[ErrorReason]
    ERROR_REASON_UNKNOWN_ACCOUNT: _ClassVar[ErrorReason]
    ERROR_REASON_CONSUMER_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_CURSOR_OUT_OF_RANGE: _ClassVar[ErrorReason]
    ERROR_REASON_ENDPOINT_URL_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_CONTROL_TOTAL_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_BUSINESS_DAY_CLOSED: _ClassVar[ErrorReason]
    ERROR_REASON_PREPAYMENT_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_ENDPOINT_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_MAINFRAME_REFUSED: _ClassVar[ErrorReason]
    ERROR_REASON_POSTING_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_REVERSAL_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_DATE_OUT_OF_RANGE: _ClassVar[ErrorReason]
    ERROR_REASON_BATCH_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_QUOTA_EXCEEDED: _ClassVar[ErrorReason]
    ERROR_REASON_PAYMENT_ARCHIVED: _ClassVar[ErrorReason]
    ERROR_REASON_BUSINESS_DAY_NOT_FINAL: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_FIELD: ErrorReason
ERROR_REASON_IDEMPOTENCY_KEY_REUSED: ErrorReason
ERROR_REASON_LOAN_NOT_FOUND: ErrorReason
ERROR_REASON_WRONG_LOAN_TYPE: ErrorReason
ERROR_REASON_CURRENCY_MISMATCH: ErrorReason
ERROR_REASON_AMOUNT_INVALID: ErrorReason
ERROR_REASON_AMOUNT_OVER_CHANNEL_LIMIT: ErrorReason
ERROR_REASON_LOAN_PAID_OFF: ErrorReason
ERROR_REASON_PARTIAL_PAYMENT_NOT_ALLOWED: ErrorReason
ERROR_REASON_PAYMENT_NOT_FOUND: ErrorReason
ERROR_REASON_ALREADY_REVERSED: ErrorReason
ERROR_REASON_CALLER_NOT_ALLOWED: ErrorReason
ERROR_REASON_OPERATION_NOT_ALLOWED: ErrorReason
ERROR_REASON_RATE_LIMITED: ErrorReason
ERROR_REASON_TOKEN_INVALID: ErrorReason
ERROR_REASON_DOWNSTREAM_UNAVAILABLE: ErrorReason
ERROR_REASON_UNBALANCED_MOVEMENT: ErrorReason
ERROR_REASON_UNKNOWN_ACCOUNT: ErrorReason
ERROR_REASON_CONSUMER_NOT_FOUND: ErrorReason
ERROR_REASON_CURSOR_OUT_OF_RANGE: ErrorReason
ERROR_REASON_ENDPOINT_URL_INVALID: ErrorReason
ERROR_REASON_CONTROL_TOTAL_MISMATCH: ErrorReason
ERROR_REASON_BUSINESS_DAY_CLOSED: ErrorReason
ERROR_REASON_PREPAYMENT_NOT_ALLOWED: ErrorReason
ERROR_REASON_ENDPOINT_NOT_FOUND: ErrorReason
ERROR_REASON_MAINFRAME_REFUSED: ErrorReason
ERROR_REASON_POSTING_NOT_FOUND: ErrorReason
ERROR_REASON_REVERSAL_NOT_ALLOWED: ErrorReason
ERROR_REASON_DATE_OUT_OF_RANGE: ErrorReason
ERROR_REASON_BATCH_NOT_FOUND: ErrorReason
ERROR_REASON_QUOTA_EXCEEDED: ErrorReason
ERROR_REASON_PAYMENT_ARCHIVED: ErrorReason
ERROR_REASON_BUSINESS_DAY_NOT_FINAL: ErrorReason

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("reason", "message", "field_violations")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    reason: ErrorReason
    message: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, reason: _Optional[_Union[ErrorReason, str]] = ..., message: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...
