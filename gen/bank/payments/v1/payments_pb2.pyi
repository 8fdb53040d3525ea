import datetime

from bank.common.v1 import errors_pb2 as _errors_pb2
from bank.common.v1 import types_pb2 as _types_pb2
from bank.loans.v1 import loans_pb2 as _loans_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentOrder(_message.Message):
    __slots__ = ("idempotency_key", "loan_id", "amount", "prepayment_mode", "channel_reference")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PREPAYMENT_MODE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    loan_id: str
    amount: _types_pb2.Money
    prepayment_mode: _types_pb2.PrepaymentMode
    channel_reference: str
    def __init__(self, idempotency_key: _Optional[str] = ..., loan_id: _Optional[str] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., prepayment_mode: _Optional[_Union[_types_pb2.PrepaymentMode, str]] = ..., channel_reference: _Optional[str] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("payment_id", "channel", "idempotency_key", "loan_id", "loan_type", "amount", "status", "allocation", "outstanding_balance", "rejection", "business_date", "confirmation_sequence", "customer_id", "accept_time", "result_time", "prepayment_mode", "channel_reference", "value_date", "reversal_business_date", "device_id", "reversed_allocation")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_TIME_FIELD_NUMBER: _ClassVar[int]
    PREPAYMENT_MODE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    VALUE_DATE_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REVERSED_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    channel: _types_pb2.Channel
    idempotency_key: str
    loan_id: str
    loan_type: _types_pb2.LoanType
    amount: _types_pb2.Money
    status: _types_pb2.PaymentStatus
    allocation: _loans_pb2.Allocation
    outstanding_balance: _types_pb2.Money
    rejection: _errors_pb2.Rejection
    business_date: str
    confirmation_sequence: int
    customer_id: str
    accept_time: _timestamp_pb2.Timestamp
    result_time: _timestamp_pb2.Timestamp
    prepayment_mode: _types_pb2.PrepaymentMode
    channel_reference: str
    value_date: str
    reversal_business_date: str
    device_id: str
    reversed_allocation: _loans_pb2.Allocation
    def __init__(self, payment_id: _Optional[str] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., idempotency_key: _Optional[str] = ..., loan_id: _Optional[str] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.PaymentStatus, str]] = ..., allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., outstanding_balance: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ..., business_date: _Optional[str] = ..., confirmation_sequence: _Optional[int] = ..., customer_id: _Optional[str] = ..., accept_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prepayment_mode: _Optional[_Union[_types_pb2.PrepaymentMode, str]] = ..., channel_reference: _Optional[str] = ..., value_date: _Optional[str] = ..., reversal_business_date: _Optional[str] = ..., device_id: _Optional[str] = ..., reversed_allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ...) -> None: ...
