from bank.common.v1 import errors_pb2 as _errors_pb2
from bank.common.v1 import types_pb2 as _types_pb2
from bank.ledger.v1 import ledger_pb2 as _ledger_pb2
from bank.loans.v1 import loans_pb2 as _loans_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoanRecord(_message.Message):
    __slots__ = ("loan_id", "borrower_id", "loan_type", "principal", "annual_rate_bps", "term_months", "disbursement_date", "balloon", "asset_value", "installments_paid")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    BORROWER_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    TERM_MONTHS_FIELD_NUMBER: _ClassVar[int]
    DISBURSEMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    BALLOON_FIELD_NUMBER: _ClassVar[int]
    ASSET_VALUE_FIELD_NUMBER: _ClassVar[int]
    INSTALLMENTS_PAID_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    borrower_id: str
    loan_type: _types_pb2.LoanType
    principal: _types_pb2.Money
    annual_rate_bps: int
    term_months: int
    disbursement_date: str
    balloon: _types_pb2.Money
    asset_value: _types_pb2.Money
    installments_paid: int
    def __init__(self, loan_id: _Optional[str] = ..., borrower_id: _Optional[str] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., principal: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., annual_rate_bps: _Optional[int] = ..., term_months: _Optional[int] = ..., disbursement_date: _Optional[str] = ..., balloon: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., asset_value: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., installments_paid: _Optional[int] = ...) -> None: ...

class ImportLoansRequest(_message.Message):
    __slots__ = ("loans", "source")
    LOANS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    loans: _containers.RepeatedCompositeFieldContainer[LoanRecord]
    source: str
    def __init__(self, loans: _Optional[_Iterable[_Union[LoanRecord, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class ImportLoansResponse(_message.Message):
    __slots__ = ("added", "unchanged")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    added: int
    unchanged: int
    def __init__(self, added: _Optional[int] = ..., unchanged: _Optional[int] = ...) -> None: ...

class LoanPayment(_message.Message):
    __slots__ = ("payment_id", "loan_id", "amount", "prepayment_mode", "business_date", "channel", "value_date")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PREPAYMENT_MODE_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_DATE_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    loan_id: str
    amount: _types_pb2.Money
    prepayment_mode: _types_pb2.PrepaymentMode
    business_date: str
    channel: _types_pb2.Channel
    value_date: str
    def __init__(self, payment_id: _Optional[str] = ..., loan_id: _Optional[str] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., prepayment_mode: _Optional[_Union[_types_pb2.PrepaymentMode, str]] = ..., business_date: _Optional[str] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., value_date: _Optional[str] = ...) -> None: ...

class ApplyPaymentsRequest(_message.Message):
    __slots__ = ("payments", "traceparents", "priority")
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[LoanPayment]
    traceparents: _containers.RepeatedScalarFieldContainer[str]
    priority: _types_pb2.Priority
    def __init__(self, payments: _Optional[_Iterable[_Union[LoanPayment, _Mapping]]] = ..., traceparents: _Optional[_Iterable[str]] = ..., priority: _Optional[_Union[_types_pb2.Priority, str]] = ...) -> None: ...

class ApplyPaymentsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[PaymentOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[PaymentOutcome, _Mapping]]] = ...) -> None: ...

class PaymentOutcome(_message.Message):
    __slots__ = ("payment_id", "applied", "rejection")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    applied: AppliedPayment
    rejection: _errors_pb2.Rejection
    def __init__(self, payment_id: _Optional[str] = ..., applied: _Optional[_Union[AppliedPayment, _Mapping]] = ..., rejection: _Optional[_Union[_errors_pb2.Rejection, _Mapping]] = ...) -> None: ...

class AppliedPayment(_message.Message):
    __slots__ = ("loan_id", "amount", "allocation", "outstanding_balance", "posting", "business_date")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSTING_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    amount: _types_pb2.Money
    allocation: _loans_pb2.Allocation
    outstanding_balance: _types_pb2.Money
    posting: _ledger_pb2.Posting
    business_date: str
    def __init__(self, loan_id: _Optional[str] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., outstanding_balance: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., posting: _Optional[_Union[_ledger_pb2.Posting, _Mapping]] = ..., business_date: _Optional[str] = ...) -> None: ...

class ReversePaymentRequest(_message.Message):
    __slots__ = ("reversal_id", "payment_id", "reason", "business_date")
    REVERSAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    reversal_id: str
    payment_id: str
    reason: str
    business_date: str
    def __init__(self, reversal_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., reason: _Optional[str] = ..., business_date: _Optional[str] = ...) -> None: ...

class ReversePaymentResponse(_message.Message):
    __slots__ = ("reversal_id", "payment_id", "loan_id", "outstanding_balance", "posting", "allocation", "revisions")
    REVERSAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSTING_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    reversal_id: str
    payment_id: str
    loan_id: str
    outstanding_balance: _types_pb2.Money
    posting: _ledger_pb2.Posting
    allocation: _loans_pb2.Allocation
    revisions: _containers.RepeatedCompositeFieldContainer[PaymentRevision]
    def __init__(self, reversal_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., loan_id: _Optional[str] = ..., outstanding_balance: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., posting: _Optional[_Union[_ledger_pb2.Posting, _Mapping]] = ..., allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., revisions: _Optional[_Iterable[_Union[PaymentRevision, _Mapping]]] = ...) -> None: ...

class PaymentRevision(_message.Message):
    __slots__ = ("revision_id", "payment_id", "revision", "channel", "amount", "allocation_before", "allocation", "outstanding_balance", "posting", "business_date", "loan_id")
    REVISION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSTING_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    revision_id: str
    payment_id: str
    revision: int
    channel: _types_pb2.Channel
    amount: _types_pb2.Money
    allocation_before: _loans_pb2.Allocation
    allocation: _loans_pb2.Allocation
    outstanding_balance: _types_pb2.Money
    posting: _ledger_pb2.Posting
    business_date: str
    loan_id: str
    def __init__(self, revision_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., revision: _Optional[int] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., allocation_before: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., outstanding_balance: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., posting: _Optional[_Union[_ledger_pb2.Posting, _Mapping]] = ..., business_date: _Optional[str] = ..., loan_id: _Optional[str] = ...) -> None: ...

class GetLoanRequest(_message.Message):
    __slots__ = ("loan_id", "as_of_date")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    as_of_date: str
    def __init__(self, loan_id: _Optional[str] = ..., as_of_date: _Optional[str] = ...) -> None: ...

class GetLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: _loans_pb2.Loan
    def __init__(self, loan: _Optional[_Union[_loans_pb2.Loan, _Mapping]] = ...) -> None: ...

class ListBorrowerLoansRequest(_message.Message):
    __slots__ = ("borrower_id", "as_of_date")
    BORROWER_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    borrower_id: str
    as_of_date: str
    def __init__(self, borrower_id: _Optional[str] = ..., as_of_date: _Optional[str] = ...) -> None: ...

class ListBorrowerLoansResponse(_message.Message):
    __slots__ = ("loans",)
    LOANS_FIELD_NUMBER: _ClassVar[int]
    loans: _containers.RepeatedCompositeFieldContainer[_loans_pb2.Loan]
    def __init__(self, loans: _Optional[_Iterable[_Union[_loans_pb2.Loan, _Mapping]]] = ...) -> None: ...

class ListAppliedPaymentsRequest(_message.Message):
    __slots__ = ("business_date", "page_size", "page_token")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    page_size: int
    page_token: str
    def __init__(self, business_date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AppliedMovement(_message.Message):
    __slots__ = ("movement_id", "payment_id", "loan_id", "channel", "amount", "reversal", "allocation", "business_date", "revision")
    MOVEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    movement_id: str
    payment_id: str
    loan_id: str
    channel: _types_pb2.Channel
    amount: _types_pb2.Money
    reversal: bool
    allocation: _loans_pb2.Allocation
    business_date: str
    revision: bool
    def __init__(self, movement_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., loan_id: _Optional[str] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., reversal: _Optional[bool] = ..., allocation: _Optional[_Union[_loans_pb2.Allocation, _Mapping]] = ..., business_date: _Optional[str] = ..., revision: _Optional[bool] = ...) -> None: ...

class ListAppliedPaymentsResponse(_message.Message):
    __slots__ = ("movements", "next_page_token", "payment_count", "payment_totals", "reversal_count", "reversal_totals")
    MOVEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TOTALS_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_TOTALS_FIELD_NUMBER: _ClassVar[int]
    movements: _containers.RepeatedCompositeFieldContainer[AppliedMovement]
    next_page_token: str
    payment_count: int
    payment_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    reversal_count: int
    reversal_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    def __init__(self, movements: _Optional[_Iterable[_Union[AppliedMovement, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., payment_count: _Optional[int] = ..., payment_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ..., reversal_count: _Optional[int] = ..., reversal_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ...) -> None: ...
