from bank.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoanStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAN_STATUS_UNSPECIFIED: _ClassVar[LoanStatus]
    LOAN_STATUS_CURRENT: _ClassVar[LoanStatus]
    LOAN_STATUS_OVERDUE: _ClassVar[LoanStatus]
    LOAN_STATUS_PAID_OFF: _ClassVar[LoanStatus]

class InstallmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTALLMENT_STATUS_UNSPECIFIED: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_PENDING: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_PARTIALLY_PAID: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_PAID: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_OVERDUE: _ClassVar[InstallmentStatus]

class RiskCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_CATEGORY_UNSPECIFIED: _ClassVar[RiskCategory]
    RISK_CATEGORY_NORMAL: _ClassVar[RiskCategory]
    RISK_CATEGORY_POTENTIAL_PROBLEMS: _ClassVar[RiskCategory]
    RISK_CATEGORY_SUBSTANDARD: _ClassVar[RiskCategory]
    RISK_CATEGORY_DOUBTFUL: _ClassVar[RiskCategory]
    RISK_CATEGORY_LOSS: _ClassVar[RiskCategory]
LOAN_STATUS_UNSPECIFIED: LoanStatus
LOAN_STATUS_CURRENT: LoanStatus
LOAN_STATUS_OVERDUE: LoanStatus
LOAN_STATUS_PAID_OFF: LoanStatus
INSTALLMENT_STATUS_UNSPECIFIED: InstallmentStatus
INSTALLMENT_STATUS_PENDING: InstallmentStatus
INSTALLMENT_STATUS_PARTIALLY_PAID: InstallmentStatus
INSTALLMENT_STATUS_PAID: InstallmentStatus
INSTALLMENT_STATUS_OVERDUE: InstallmentStatus
RISK_CATEGORY_UNSPECIFIED: RiskCategory
RISK_CATEGORY_NORMAL: RiskCategory
RISK_CATEGORY_POTENTIAL_PROBLEMS: RiskCategory
RISK_CATEGORY_SUBSTANDARD: RiskCategory
RISK_CATEGORY_DOUBTFUL: RiskCategory
RISK_CATEGORY_LOSS: RiskCategory

class Allocation(_message.Message):
    __slots__ = ("fees_minor", "penalty_interest_minor", "interest_minor", "insurance_minor", "principal_minor", "prepayment_minor", "overpayment_minor")
    FEES_MINOR_FIELD_NUMBER: _ClassVar[int]
    PENALTY_INTEREST_MINOR_FIELD_NUMBER: _ClassVar[int]
    INTEREST_MINOR_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_MINOR_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    PREPAYMENT_MINOR_FIELD_NUMBER: _ClassVar[int]
    OVERPAYMENT_MINOR_FIELD_NUMBER: _ClassVar[int]
    fees_minor: int
    penalty_interest_minor: int
    interest_minor: int
    insurance_minor: int
    principal_minor: int
    prepayment_minor: int
    overpayment_minor: int
    def __init__(self, fees_minor: _Optional[int] = ..., penalty_interest_minor: _Optional[int] = ..., interest_minor: _Optional[int] = ..., insurance_minor: _Optional[int] = ..., principal_minor: _Optional[int] = ..., prepayment_minor: _Optional[int] = ..., overpayment_minor: _Optional[int] = ...) -> None: ...

class Installment(_message.Message):
    __slots__ = ("number", "due_date", "principal_minor", "interest_minor", "insurance_minor", "outstanding_minor", "status", "penalty_interest_minor", "fees_minor")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    INTEREST_MINOR_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_MINOR_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_MINOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PENALTY_INTEREST_MINOR_FIELD_NUMBER: _ClassVar[int]
    FEES_MINOR_FIELD_NUMBER: _ClassVar[int]
    number: int
    due_date: str
    principal_minor: int
    interest_minor: int
    insurance_minor: int
    outstanding_minor: int
    status: InstallmentStatus
    penalty_interest_minor: int
    fees_minor: int
    def __init__(self, number: _Optional[int] = ..., due_date: _Optional[str] = ..., principal_minor: _Optional[int] = ..., interest_minor: _Optional[int] = ..., insurance_minor: _Optional[int] = ..., outstanding_minor: _Optional[int] = ..., status: _Optional[_Union[InstallmentStatus, str]] = ..., penalty_interest_minor: _Optional[int] = ..., fees_minor: _Optional[int] = ...) -> None: ...

class Loan(_message.Message):
    __slots__ = ("loan_id", "loan_type", "borrower_id", "currency_code", "principal_minor", "annual_rate_bps", "term_months", "disbursement_date", "status", "outstanding_principal", "amount_due", "schedule", "payoff_amount", "balloon_minor", "prepaid_minor", "tcea_bps", "days_past_due", "risk_category", "as_of_date")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_TYPE_FIELD_NUMBER: _ClassVar[int]
    BORROWER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    TERM_MONTHS_FIELD_NUMBER: _ClassVar[int]
    DISBURSEMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PAYOFF_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALLOON_MINOR_FIELD_NUMBER: _ClassVar[int]
    PREPAID_MINOR_FIELD_NUMBER: _ClassVar[int]
    TCEA_BPS_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    RISK_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    loan_id: str
    loan_type: _types_pb2.LoanType
    borrower_id: str
    currency_code: str
    principal_minor: int
    annual_rate_bps: int
    term_months: int
    disbursement_date: str
    status: LoanStatus
    outstanding_principal: _types_pb2.Money
    amount_due: _types_pb2.Money
    schedule: _containers.RepeatedCompositeFieldContainer[Installment]
    payoff_amount: _types_pb2.Money
    balloon_minor: int
    prepaid_minor: int
    tcea_bps: int
    days_past_due: int
    risk_category: RiskCategory
    as_of_date: str
    def __init__(self, loan_id: _Optional[str] = ..., loan_type: _Optional[_Union[_types_pb2.LoanType, str]] = ..., borrower_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., principal_minor: _Optional[int] = ..., annual_rate_bps: _Optional[int] = ..., term_months: _Optional[int] = ..., disbursement_date: _Optional[str] = ..., status: _Optional[_Union[LoanStatus, str]] = ..., outstanding_principal: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., amount_due: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., schedule: _Optional[_Iterable[_Union[Installment, _Mapping]]] = ..., payoff_amount: _Optional[_Union[_types_pb2.Money, _Mapping]] = ..., balloon_minor: _Optional[int] = ..., prepaid_minor: _Optional[int] = ..., tcea_bps: _Optional[int] = ..., days_past_due: _Optional[int] = ..., risk_category: _Optional[_Union[RiskCategory, str]] = ..., as_of_date: _Optional[str] = ...) -> None: ...
