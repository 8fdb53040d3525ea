"""Loan ids say their product: CSH-, MTG- or VEH- and then 6 to 12 digits (CSH-000123).
A router routes on the prefix alone, without asking any core."""

import re

from bank.common.v1 import types_pb2
from paymesh.topology import PRODUCTS

PREFIXES = {product.loan_type: product.id_prefix for product in PRODUCTS}
_TYPE_OF_PREFIX = {prefix: loan_type for loan_type, prefix in PREFIXES.items()}
_LOAN_ID = re.compile(rf"({'|'.join(_TYPE_OF_PREFIX)})-([0-9]{{6,12}})")


def loan_type_of(loan_id: str) -> types_pb2.LoanType | None:
    """The LoanType of a well-formed loan id, or None for anything malformed."""
    match = _LOAN_ID.fullmatch(loan_id or "")
    return _TYPE_OF_PREFIX[match.group(1)] if match else None


def make_loan_id(loan_type: types_pb2.LoanType, number: int) -> str:
    return f"{PREFIXES[loan_type]}-{number:06d}"
