import datetime

from bank.common.v1 import errors_pb2 as _errors_pb2
from bank.common.v1 import types_pb2 as _types_pb2
from bank.ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetBusinessDayStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBusinessDayStatusResponse(_message.Message):
    __slots__ = ("last_closed_business_date", "file_accepted")
    LAST_CLOSED_BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    FILE_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    last_closed_business_date: str
    file_accepted: bool
    def __init__(self, last_closed_business_date: _Optional[str] = ..., file_accepted: _Optional[bool] = ...) -> None: ...

class ListPostingsRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class ListPostingsResponse(_message.Message):
    __slots__ = ("postings",)
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    postings: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.QueuedPosting]
    def __init__(self, postings: _Optional[_Iterable[_Union[_ledger_pb2.QueuedPosting, _Mapping]]] = ...) -> None: ...

class ListMainframeBookRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class ListMainframeBookResponse(_message.Message):
    __slots__ = ("postings",)
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    postings: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.Posting]
    def __init__(self, postings: _Optional[_Iterable[_Union[_ledger_pb2.Posting, _Mapping]]] = ...) -> None: ...

class PostEntriesRequest(_message.Message):
    __slots__ = ("postings", "traceparents")
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENTS_FIELD_NUMBER: _ClassVar[int]
    postings: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.Posting]
    traceparents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, postings: _Optional[_Iterable[_Union[_ledger_pb2.Posting, _Mapping]]] = ..., traceparents: _Optional[_Iterable[str]] = ...) -> None: ...

class PostEntriesResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[PostingAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[PostingAck, _Mapping]]] = ...) -> None: ...

class PostingAck(_message.Message):
    __slots__ = ("posting_id", "status", "rejection")
    POSTING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    posting_id: str
    status: _ledger_pb2.PostingStatus
    rejection: _errors_pb2.Rejection
    def __init__(self, posting_id: _Optional[str] = ..., status: _Optional[_Union[_ledger_pb2.PostingStatus, str]] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ...) -> None: ...

class GetPostingStatusRequest(_message.Message):
    __slots__ = ("posting_id",)
    POSTING_ID_FIELD_NUMBER: _ClassVar[int]
    posting_id: str
    def __init__(self, posting_id: _Optional[str] = ...) -> None: ...

class GetPostingStatusResponse(_message.Message):
    __slots__ = ("posting_id", "status", "mainframe_reference", "rejection", "queued_time", "posted_time")
    POSTING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MAINFRAME_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    QUEUED_TIME_FIELD_NUMBER: _ClassVar[int]
    POSTED_TIME_FIELD_NUMBER: _ClassVar[int]
    posting_id: str
    status: _ledger_pb2.PostingStatus
    mainframe_reference: str
    rejection: _errors_pb2.Rejection
    queued_time: _timestamp_pb2.Timestamp
    posted_time: _timestamp_pb2.Timestamp
    def __init__(self, posting_id: _Optional[str] = ..., status: _Optional[_Union[_ledger_pb2.PostingStatus, str]] = ..., mainframe_reference: _Optional[str] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ..., queued_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., posted_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CloseBusinessDayRequest(_message.Message):
    __slots__ = ("request_id", "business_date")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    business_date: str
    def __init__(self, request_id: _Optional[str] = ..., business_date: _Optional[str] = ...) -> None: ...

class CloseBusinessDayResponse(_message.Message):
    __slots__ = ("business_date", "file_name", "record_count", "debit_totals", "credit_totals", "accepted_by_mainframe", "file_sequence", "hash_total")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_TOTALS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TOTALS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_BY_MAINFRAME_FIELD_NUMBER: _ClassVar[int]
    FILE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HASH_TOTAL_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    file_name: str
    record_count: int
    debit_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    credit_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    accepted_by_mainframe: bool
    file_sequence: int
    hash_total: int
    def __init__(self, business_date: _Optional[str] = ..., file_name: _Optional[str] = ..., record_count: _Optional[int] = ..., debit_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ..., credit_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ..., accepted_by_mainframe: _Optional[bool] = ..., file_sequence: _Optional[int] = ..., hash_total: _Optional[int] = ...) -> None: ...

class GetLedgerSummaryRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class LedgerSummaryLine(_message.Message):
    __slots__ = ("channel", "loan_type", "reversal", "status", "posting_count", "amount")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POSTING_COUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    channel: _types_pb2.Channel
    loan_type: _types_pb2.LoanType
    reversal: bool
    status: _ledger_pb2.PostingStatus
    posting_count: int
    amount: _types_pb2.Money
    def __init__(self, channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., reversal: _Optional[bool] = ..., status: _Optional[_Union[_ledger_pb2.PostingStatus, str]] = ..., posting_count: _Optional[int] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ...) -> None: ...

class GetLedgerSummaryResponse(_message.Message):
    __slots__ = ("business_date", "lines", "day_closed")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    DAY_CLOSED_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    lines: _containers.RepeatedCompositeFieldContainer[LedgerSummaryLine]
    day_closed: bool
    def __init__(self, business_date: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LedgerSummaryLine, _Mapping]]] = ..., day_closed: _Optional[bool] = ...) -> None: ...

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
