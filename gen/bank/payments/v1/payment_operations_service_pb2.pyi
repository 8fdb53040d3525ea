import datetime

from bank.common.v1 import errors_pb2 as _errors_pb2
from bank.common.v1 import types_pb2 as _types_pb2
from bank.payments.v1 import payments_pb2 as _payments_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListPaymentsRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class ListPaymentsResponse(_message.Message):
    __slots__ = ("payments",)
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[_payments_pb2.Payment]
    def __init__(self, payments: _Optional[_Iterable[_Union[_payments_pb2.Payment, _Mapping]]] = ...) -> None: ...

class ListRefusedDeliveriesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RefusedDelivery(_message.Message):
    __slots__ = ("topic", "item_key", "payment_id", "rejection", "refuse_time")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ITEM_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    REFUSE_TIME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    item_key: str
    payment_id: str
    rejection: _errors_pb2.Rejection
    refuse_time: _timestamp_pb2.Timestamp
    def __init__(self, topic: _Optional[str] = ..., item_key: _Optional[str] = ..., payment_id: _Optional[str] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ..., refuse_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRefusedDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[RefusedDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[RefusedDelivery, _Mapping]]] = ...) -> None: ...

class ReplayRefusedDeliveriesRequest(_message.Message):
    __slots__ = ("deliveries", "all")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[RefusedDelivery]
    all: bool
    def __init__(self, deliveries: _Optional[_Iterable[_Union[RefusedDelivery, _Mapping]]] = ..., all: _Optional[bool] = ...) -> None: ...

class ReplayRefusedDeliveriesResponse(_message.Message):
    __slots__ = ("replayed_count",)
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    def __init__(self, replayed_count: _Optional[int] = ...) -> None: ...

class SummarizePaymentsRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class SummarizePaymentsResponse(_message.Message):
    __slots__ = ("business_date", "totals")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    totals: _containers.RepeatedCompositeFieldContainer[PaymentTotal]
    def __init__(self, business_date: _Optional[str] = ..., totals: _Optional[_Iterable[_Union[PaymentTotal, _Mapping]]] = ...) -> None: ...

class PaymentTotal(_message.Message):
    __slots__ = ("channel", "loan_type", "status", "count", "amount")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    channel: _types_pb2.Channel
    loan_type: _types_pb2.LoanType
    status: _types_pb2.PaymentStatus
    count: int
    amount: _types_pb2.Money
    def __init__(self, channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., status: _Optional[_Union[_types_pb2.PaymentStatus, str]] = ..., count: _Optional[int] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ...) -> None: ...

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
