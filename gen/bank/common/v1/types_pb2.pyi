from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_APP: _ClassVar[Channel]
    CHANNEL_INTERNET_BANKING: _ClassVar[Channel]
    CHANNEL_AGENT: _ClassVar[Channel]
    CHANNEL_ATM: _ClassVar[Channel]
    CHANNEL_STORE: _ClassVar[Channel]

class LoanType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAN_TYPE_UNSPECIFIED: _ClassVar[LoanType]
    LOAN_TYPE_CASH: _ClassVar[LoanType]
    LOAN_TYPE_MORTGAGE: _ClassVar[LoanType]
    LOAN_TYPE_VEHICLE: _ClassVar[LoanType]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_ACCEPTED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_APPLIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REJECTED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REVERSED: _ClassVar[PaymentStatus]

class PrepaymentMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPAYMENT_MODE_UNSPECIFIED: _ClassVar[PrepaymentMode]
    PREPAYMENT_MODE_REDUCE_TERM: _ClassVar[PrepaymentMode]
    PREPAYMENT_MODE_REDUCE_INSTALLMENT: _ClassVar[PrepaymentMode]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_ONLINE: _ClassVar[Priority]
    PRIORITY_STREAM: _ClassVar[Priority]
    PRIORITY_BATCH: _ClassVar[Priority]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_APP: Channel
CHANNEL_INTERNET_BANKING: Channel
CHANNEL_AGENT: Channel
CHANNEL_ATM: Channel
CHANNEL_STORE: Channel
LOAN_TYPE_UNSPECIFIED: LoanType
LOAN_TYPE_CASH: LoanType
LOAN_TYPE_MORTGAGE: LoanType
LOAN_TYPE_VEHICLE: LoanType
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_ACCEPTED: PaymentStatus
PAYMENT_STATUS_APPLIED: PaymentStatus
PAYMENT_STATUS_REJECTED: PaymentStatus
PAYMENT_STATUS_REVERSED: PaymentStatus
PREPAYMENT_MODE_UNSPECIFIED: PrepaymentMode
PREPAYMENT_MODE_REDUCE_TERM: PrepaymentMode
PREPAYMENT_MODE_REDUCE_INSTALLMENT: PrepaymentMode
PRIORITY_UNSPECIFIED: Priority
PRIORITY_ONLINE: Priority
PRIORITY_STREAM: Priority
PRIORITY_BATCH: Priority

class Money(_message.Message):
    __slots__ = ("currency_code", "amount_minor")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    amount_minor: int
    def __init__(self, currency_code: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...

class DroppedBusinessDay(_message.Message):
    __slots__ = ("business_date", "dropped_count", "kept_key_count", "store_bytes_before", "store_bytes_after", "forgotten_key_count")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    KEPT_KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORE_BYTES_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STORE_BYTES_AFTER_FIELD_NUMBER: _ClassVar[int]
    FORGOTTEN_KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    dropped_count: int
    kept_key_count: int
    store_bytes_before: int
    store_bytes_after: int
    forgotten_key_count: int
    def __init__(self, business_date: _Optional[str] = ..., dropped_count: _Optional[int] = ..., kept_key_count: _Optional[int] = ..., store_bytes_before: _Optional[int] = ..., store_bytes_after: _Optional[int] = ..., forgotten_key_count: _Optional[int] = ...) -> None: ...
