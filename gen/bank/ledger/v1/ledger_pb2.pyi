from bank.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntrySide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_SIDE_UNSPECIFIED: _ClassVar[EntrySide]
    ENTRY_SIDE_DEBIT: _ClassVar[EntrySide]
    ENTRY_SIDE_CREDIT: _ClassVar[EntrySide]

class PostingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POSTING_STATUS_UNSPECIFIED: _ClassVar[PostingStatus]
    POSTING_STATUS_QUEUED: _ClassVar[PostingStatus]
    POSTING_STATUS_POSTED: _ClassVar[PostingStatus]
    POSTING_STATUS_REJECTED: _ClassVar[PostingStatus]
ENTRY_SIDE_UNSPECIFIED: EntrySide
ENTRY_SIDE_DEBIT: EntrySide
ENTRY_SIDE_CREDIT: EntrySide
POSTING_STATUS_UNSPECIFIED: PostingStatus
POSTING_STATUS_QUEUED: PostingStatus
POSTING_STATUS_POSTED: PostingStatus
POSTING_STATUS_REJECTED: PostingStatus

class LedgerEntry(_message.Message):
    __slots__ = ("entry_id", "account", "side", "amount")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    account: str
    side: EntrySide
    amount: _types_pb2.Money
    def __init__(self, entry_id: _Optional[str] = ..., account: _Optional[str] = ..., side: _Optional[_Union[EntrySide, str]] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ...) -> None: ...

class Posting(_message.Message):
    __slots__ = ("posting_id", "business_date", "payment_id", "channel", "loan_type", "entries")
    POSTING_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    posting_id: str
    business_date: str
    payment_id: str
    channel: _types_pb2.Channel
    loan_type: _types_pb2.LoanType
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    def __init__(self, posting_id: _Optional[str] = ..., business_date: _Optional[str] = ..., payment_id: _Optional[str] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ...) -> None: ...

class QueuedPosting(_message.Message):
    __slots__ = ("posting", "status", "original_business_date", "mainframe_reference")
    POSTING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    MAINFRAME_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    posting: Posting
    status: PostingStatus
    original_business_date: str
    mainframe_reference: str
    def __init__(self, posting: _Optional[_Union[Posting, _Mapping]] = ..., status: _Optional[_Union[PostingStatus, str]] = ..., original_business_date: _Optional[str] = ..., mainframe_reference: _Optional[str] = ...) -> None: ...
