from bank.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
