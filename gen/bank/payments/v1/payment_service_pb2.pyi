from bank.common.v1 import types_pb2 as _types_pb2
from bank.payments.v1 import payments_pb2 as _payments_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitPaymentRequest(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.PaymentOrder
    def __init__(self, payment: _Optional[_Union[_payments_pb2.PaymentOrder, _Mapping]] = ...) -> None: ...

class SubmitPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ...) -> None: ...

class StreamPaymentsRequest(_message.Message):
    __slots__ = ("payment", "payments")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.PaymentOrder
    payments: _containers.RepeatedCompositeFieldContainer[_payments_pb2.PaymentOrder]
    def __init__(self, payment: _Optional[_Union[_payments_pb2.PaymentOrder, _Mapping]] = ..., payments: _Optional[_Iterable[_Union[_payments_pb2.PaymentOrder, _Mapping]]] = ...) -> None: ...

class StreamPaymentsResponse(_message.Message):
    __slots__ = ("payment", "payments")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    payments: _containers.RepeatedCompositeFieldContainer[_payments_pb2.Payment]
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ..., payments: _Optional[_Iterable[_Union[_payments_pb2.Payment, _Mapping]]] = ...) -> None: ...

class UploadBatchRequest(_message.Message):
    __slots__ = ("header", "line", "trailer", "lines")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    header: BatchHeader
    line: BatchLine
    trailer: BatchTrailer
    lines: BatchLines
    def __init__(self, header: _Optional[_Union[BatchHeader, _Mapping]] = ..., line: _Optional[_Union[BatchLine, _Mapping]] = ..., trailer: _Optional[_Union[BatchTrailer, _Mapping]] = ..., lines: _Optional[_Union[BatchLines, _Mapping]] = ...) -> None: ...

class BatchLines(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[BatchLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[BatchLine, _Mapping]]] = ...) -> None: ...

class BatchHeader(_message.Message):
    __slots__ = ("batch_id", "business_date")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    business_date: str
    def __init__(self, batch_id: _Optional[str] = ..., business_date: _Optional[str] = ...) -> None: ...

class BatchLine(_message.Message):
    __slots__ = ("line_number", "payment", "collection_date")
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_DATE_FIELD_NUMBER: _ClassVar[int]
    line_number: int
    payment: _payments_pb2.PaymentOrder
    collection_date: str
    def __init__(self, line_number: _Optional[int] = ..., payment: _Optional[_Union[_payments_pb2.PaymentOrder, _Mapping]] = ..., collection_date: _Optional[str] = ...) -> None: ...

class BatchTrailer(_message.Message):
    __slots__ = ("line_count", "control_totals")
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTROL_TOTALS_FIELD_NUMBER: _ClassVar[int]
    line_count: int
    control_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    def __init__(self, line_count: _Optional[int] = ..., control_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ...) -> None: ...

class UploadBatchResponse(_message.Message):
    __slots__ = ("summary", "results", "next_page_token")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    summary: BatchSummary
    results: _containers.RepeatedCompositeFieldContainer[BatchLineResult]
    next_page_token: str
    def __init__(self, summary: _Optional[_Union[BatchSummary, _Mapping]] = ..., results: _Optional[_Iterable[_Union[BatchLineResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListBatchResultsRequest(_message.Message):
    __slots__ = ("batch_id", "page_size", "page_token")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    page_size: int
    page_token: str
    def __init__(self, batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchResultsResponse(_message.Message):
    __slots__ = ("results", "next_page_token")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchLineResult]
    next_page_token: str
    def __init__(self, results: _Optional[_Iterable[_Union[BatchLineResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BatchLineResult(_message.Message):
    __slots__ = ("line_number", "payment")
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    line_number: int
    payment: _payments_pb2.Payment
    def __init__(self, line_number: _Optional[int] = ..., payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ...) -> None: ...

class BatchSummary(_message.Message):
    __slots__ = ("batch_id", "line_count", "applied_count", "rejected_count", "replayed_count", "applied_totals", "rejected_totals")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_TOTALS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_TOTALS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    line_count: int
    applied_count: int
    rejected_count: int
    replayed_count: int
    applied_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    rejected_totals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Money]
    def __init__(self, batch_id: _Optional[str] = ..., line_count: _Optional[int] = ..., applied_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., replayed_count: _Optional[int] = ..., applied_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ..., rejected_totals: _Optional[_Iterable[_Union[_types_pb2.Money, _Mapping]]] = ...) -> None: ...

class GetLoanDebtRequest(_message.Message):
    __slots__ = ("loan_id",)
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    def __init__(self, loan_id: _Optional[str] = ...) -> None: ...

class GetLoanDebtResponse(_message.Message):
    __slots__ = ("debt",)
    DEBT_FIELD_NUMBER: _ClassVar[int]
    debt: LoanDebt
    def __init__(self, debt: _Optional[_Union[LoanDebt, _Mapping]] = ...) -> None: ...

class ListCustomerLoansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCustomerLoansResponse(_message.Message):
    __slots__ = ("loans",)
    LOANS_FIELD_NUMBER: _ClassVar[int]
    loans: _containers.RepeatedCompositeFieldContainer[LoanDebt]
    def __init__(self, loans: _Optional[_Iterable[_Union[LoanDebt, _Mapping]]] = ...) -> None: ...

class LoanDebt(_message.Message):
    __slots__ = ("loan_id", "loan_type", "currency_code", "amount_due", "overdue", "penalty_interest", "fees", "installment_in_course", "next_due_date", "days_past_due", "payoff_amount", "as_of_date", "paid_off")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    PENALTY_INTEREST_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    INSTALLMENT_IN_COURSE_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    PAYOFF_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    PAID_OFF_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    loan_type: _types_pb2.LoanType
    currency_code: str
    amount_due: _types_pb2.Money
    overdue: _types_pb2.Money
    penalty_interest: _types_pb2.Money
    fees: _types_pb2.Money
    installment_in_course: _types_pb2.Money
    next_due_date: str
    days_past_due: int
    payoff_amount: _types_pb2.Money
    as_of_date: str
    paid_off: bool
    def __init__(self, loan_id: _Optional[str] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., currency_code: _Optional[str] = ..., amount_due: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., overdue: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., penalty_interest: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., fees: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., installment_in_course: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., next_due_date: _Optional[str] = ..., days_past_due: _Optional[int] = ..., payoff_amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., as_of_date: _Optional[str] = ..., paid_off: _Optional[bool] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class GetPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ...) -> None: ...

class ReversePaymentRequest(_message.Message):
    __slots__ = ("idempotency_key", "payment_id", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    payment_id: str
    reason: str
    def __init__(self, idempotency_key: _Optional[str] = ..., payment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReversePaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ...) -> None: ...
