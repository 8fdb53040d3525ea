import datetime

from bank.common.v1 import errors_pb2 as _errors_pb2
from bank.common.v1 import types_pb2 as _types_pb2
from bank.confirmations.v1 import confirmations_pb2 as _confirmations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartPosition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    START_POSITION_UNSPECIFIED: _ClassVar[StartPosition]
    START_POSITION_BEGINNING: _ClassVar[StartPosition]
    START_POSITION_NOW: _ClassVar[StartPosition]
    START_POSITION_CONSUMER: _ClassVar[StartPosition]
    START_POSITION_AFTER_SEQUENCE: _ClassVar[StartPosition]
START_POSITION_UNSPECIFIED: StartPosition
START_POSITION_BEGINNING: StartPosition
START_POSITION_NOW: StartPosition
START_POSITION_CONSUMER: StartPosition
START_POSITION_AFTER_SEQUENCE: StartPosition

class ListConfirmationsRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class ListConfirmationsResponse(_message.Message):
    __slots__ = ("confirmations",)
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    confirmations: _containers.RepeatedCompositeFieldContainer[_confirmations_pb2.Confirmation]
    def __init__(self, confirmations: _Optional[_Iterable[_Union[_confirmations_pb2.Confirmation, _Mapping]]] = ...) -> None: ...

class PublishConfirmationsRequest(_message.Message):
    __slots__ = ("confirmations", "traceparents", "priority")
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    confirmations: _containers.RepeatedCompositeFieldContainer[_confirmations_pb2.Confirmation]
    traceparents: _containers.RepeatedScalarFieldContainer[str]
    priority: _types_pb2.Priority
    def __init__(self, confirmations: _Optional[_Iterable[_Union[_confirmations_pb2.Confirmation, _Mapping]]] = ..., traceparents: _Optional[_Iterable[str]] = ..., priority: _Optional[_Union[_types_pb2.Priority, str]] = ...) -> None: ...

class PublishConfirmationsResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[PublishAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[PublishAck, _Mapping]]] = ...) -> None: ...

class PublishAck(_message.Message):
    __slots__ = ("payment_id", "sequence", "duplicate", "rejection")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    sequence: int
    duplicate: bool
    rejection: _errors_pb2.Rejection
    def __init__(self, payment_id: _Optional[str] = ..., sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("consumer_name", "start_position", "after_sequence", "filter")
    CONSUMER_NAME_FIELD_NUMBER: _ClassVar[int]
    START_POSITION_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    consumer_name: str
    start_position: StartPosition
    after_sequence: int
    filter: _confirmations_pb2.ConfirmationFilter
    def __init__(self, consumer_name: _Optional[str] = ..., start_position: _Optional[_Union[StartPosition, str]] = ..., after_sequence: _Optional[int] = ..., filter: _Optional[_Union[_confirmations_pb2.ConfirmationFilter, _Mapping]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("heartbeat", "batch")
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    heartbeat: Heartbeat
    batch: ConfirmationBatch
    def __init__(self, heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., batch: _Optional[_Union[ConfirmationBatch, _Mapping]] = ...) -> None: ...

class ConfirmationBatch(_message.Message):
    __slots__ = ("confirmations",)
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    confirmations: _containers.RepeatedCompositeFieldContainer[_confirmations_pb2.Confirmation]
    def __init__(self, confirmations: _Optional[_Iterable[_Union[_confirmations_pb2.Confirmation, _Mapping]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("head_sequence",)
    HEAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    head_sequence: int
    def __init__(self, head_sequence: _Optional[int] = ...) -> None: ...

class AcknowledgeConfirmationsRequest(_message.Message):
    __slots__ = ("consumer_name", "sequence")
    CONSUMER_NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    consumer_name: str
    sequence: int
    def __init__(self, consumer_name: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class AcknowledgeConfirmationsResponse(_message.Message):
    __slots__ = ("consumer_name", "acknowledged_sequence")
    CONSUMER_NAME_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    consumer_name: str
    acknowledged_sequence: int
    def __init__(self, consumer_name: _Optional[str] = ..., acknowledged_sequence: _Optional[int] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("request_id", "url", "description", "max_batch_size")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    url: str
    description: str
    max_batch_size: int
    def __init__(self, request_id: _Optional[str] = ..., url: _Optional[str] = ..., description: _Optional[str] = ..., max_batch_size: _Optional[int] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _confirmations_pb2.WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[_confirmations_pb2.WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[_confirmations_pb2.WebhookEndpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[_confirmations_pb2.WebhookEndpoint, _Mapping]]] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("endpoint_id", "overlap_seconds")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    overlap_seconds: int
    def __init__(self, endpoint_id: _Optional[str] = ..., overlap_seconds: _Optional[int] = ...) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ("endpoint", "previous_secret_expire_time")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    endpoint: _confirmations_pb2.WebhookEndpoint
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, endpoint: _Optional[_Union[_confirmations_pb2.WebhookEndpoint, _Mapping]] = ..., previous_secret_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReplayWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class ReplayWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("replayed_count",)
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    def __init__(self, replayed_count: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id", "status", "page_size")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    status: _confirmations_pb2.DeliveryStatus
    page_size: int
    def __init__(self, endpoint_id: _Optional[str] = ..., status: _Optional[_Union[_confirmations_pb2.DeliveryStatus, str]] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_confirmations_pb2.WebhookDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_confirmations_pb2.WebhookDelivery, _Mapping]]] = ...) -> None: ...

class SummarizeConfirmationsRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class SummarizeConfirmationsResponse(_message.Message):
    __slots__ = ("business_date", "totals")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    totals: _containers.RepeatedCompositeFieldContainer[ConfirmationTotal]
    def __init__(self, business_date: _Optional[str] = ..., totals: _Optional[_Iterable[_Union[ConfirmationTotal, _Mapping]]] = ...) -> None: ...

class ConfirmationTotal(_message.Message):
    __slots__ = ("channel", "status", "count", "amount", "loan_type")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    channel: _types_pb2.Channel
    status: _types_pb2.PaymentStatus
    count: int
    amount: _types_pb2.Money
    loan_type: _types_pb2.LoanType
    def __init__(self, channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., status: _Optional[_Union[_types_pb2.PaymentStatus, str]] = ..., count: _Optional[int] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ...) -> None: ...

class DropBusinessDayRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class DropBusinessDayResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: _types_pb2.DroppedBusinessDay
    def __init__(self, dropped: _Optional[_Union[_types_pb2.DroppedBusinessDay, _Mapping]] = ...) -> None: ...
