import datetime

from bank.common.v1 import errors_pb2 as _errors_pb2
from bank.common.v1 import types_pb2 as _types_pb2
from bank.loans.v1 import loans_pb2 as _loans_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CircuitState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CIRCUIT_STATE_UNSPECIFIED: _ClassVar[CircuitState]
    CIRCUIT_STATE_CLOSED: _ClassVar[CircuitState]
    CIRCUIT_STATE_OPEN: _ClassVar[CircuitState]
    CIRCUIT_STATE_HALF_OPEN: _ClassVar[CircuitState]

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_PENDING: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DELIVERED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DEAD_LETTER: _ClassVar[DeliveryStatus]
CIRCUIT_STATE_UNSPECIFIED: CircuitState
CIRCUIT_STATE_CLOSED: CircuitState
CIRCUIT_STATE_OPEN: CircuitState
CIRCUIT_STATE_HALF_OPEN: CircuitState
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_PENDING: DeliveryStatus
DELIVERY_STATUS_DELIVERED: DeliveryStatus
DELIVERY_STATUS_DEAD_LETTER: DeliveryStatus

class Confirmation(_message.Message):
    __slots__ = ("sequence", "payment_id", "channel", "idempotency_key", "loan_id", "loan_type", "status", "amount", "allocation", "outstanding_balance", "rejection", "business_date", "result_time", "value_date", "revision", "allocation_before", "reversed_payment_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_DATE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REVERSED_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    payment_id: str
    channel: _types_pb2.Channel
    idempotency_key: str
    loan_id: str
    loan_type: _types_pb2.LoanType
    status: _types_pb2.PaymentStatus
    amount: _types_pb2.Money
    allocation: _loans_pb2.Allocation
    outstanding_balance: _types_pb2.Money
    rejection: _errors_pb2.Rejection
    business_date: str
    result_time: _timestamp_pb2.Timestamp
    value_date: str
    revision: int
    allocation_before: _loans_pb2.Allocation
    reversed_payment_id: str
    def __init__(self, sequence: _Optional[int] = ..., payment_id: _Optional[str] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., idempotency_key: _Optional[str] = ..., loan_id: _Optional[str] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., status: _Optional[_Union[_types_pb2.PaymentStatus, str]] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., outstanding_balance: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ..., business_date: _Optional[str] = ..., result_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value_date: _Optional[str] = ..., revision: _Optional[int] = ..., allocation_before: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., reversed_payment_id: _Optional[str] = ...) -> None: ...

class ConfirmationFilter(_message.Message):
    __slots__ = ("loan_types", "statuses")
    LOAN_TYPES_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    loan_types: _containers.RepeatedScalarFieldContainer[_types_pb2.LoanType]
    statuses: _containers.RepeatedScalarFieldContainer[_types_pb2.PaymentStatus]
    def __init__(self, loan_types: _Optional[_Iterable[_Union[_types_pb2.LoanType, str]]] = ..., statuses: _Optional[_Iterable[_Union[_types_pb2.PaymentStatus, str]]] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("endpoint_id", "url", "description", "signing_secret", "create_time", "max_batch_size", "backlog")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    url: str
    description: str
    signing_secret: str
    create_time: _timestamp_pb2.Timestamp
    max_batch_size: int
    backlog: WebhookBacklog
    def __init__(self, endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., description: _Optional[str] = ..., signing_secret: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_batch_size: _Optional[int] = ..., backlog: _Optional[_Union[WebhookBacklog, _Mapping]] = ...) -> None: ...

class WebhookBacklog(_message.Message):
    __slots__ = ("pending_count", "oldest_pending_time", "circuit_state", "retry_time", "window", "in_flight")
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_TIME_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_STATE_FIELD_NUMBER: _ClassVar[int]
    RETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    pending_count: int
    oldest_pending_time: _timestamp_pb2.Timestamp
    circuit_state: CircuitState
    retry_time: _timestamp_pb2.Timestamp
    window: int
    in_flight: int
    def __init__(self, pending_count: _Optional[int] = ..., oldest_pending_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., circuit_state: _Optional[_Union[CircuitState, str]] = ..., retry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("endpoint_id", "sequence", "payment_id", "status", "attempts", "last_error", "next_attempt_time")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    sequence: int
    payment_id: str
    status: DeliveryStatus
    attempts: int
    last_error: str
    next_attempt_time: _timestamp_pb2.Timestamp
    def __init__(self, endpoint_id: _Optional[str] = ..., sequence: _Optional[int] = ..., payment_id: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
