"""Reversing an applied payment inside one transaction: the loan goes back to exactly the
state it had before the payment, recorded as a new movement with the swapped ledger
lines. Idempotent by reversal id. Only the latest live payment of a loan can be reversed
(a later payment was computed on top of it: reverse that one first)."""

import sqlite3
from collections.abc import Callable

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core import ledger, store, validation
from loan_core.apply import LoanCache, digest
from paymesh.errors import Refused
from loan_core.rules import ProductRules


def reverse_payment(
    connection: sqlite3.Connection, rules: ProductRules, loans: LoanCache, request,
    refusal_of_channel: Callable[[int], errors_pb2.Rejection | None] = lambda channel: None,
) -> core_pb2.ReversePaymentResponse:
    """refusal_of_channel: the caller's bulkhead check; a payment of a channel it does not carry
    cannot be reversed by it (paymesh.authz.Bulkhead)."""
    validation.check_id(request.reversal_id, "reversal_id")
    validation.check_id(request.payment_id, "payment_id")
    validation.check_date(request.business_date, "business_date")
    if len(request.reason) > 500:
        raise Refused(validation.INVALID, "reason must be at most 500 characters", "reason")
    request_digest = digest(request)
    earlier = store.find_movement(connection, request.reversal_id)
    if earlier is not None:
        if earlier[1] == "reversal" and earlier[4] == request_digest:
            return core_pb2.ReversePaymentResponse.FromString(earlier[5])
        raise Refused(errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                      f"reversal id {request.reversal_id} was already used for a different request", "reversal_id")
    payment = store.find_movement(connection, request.payment_id)
    if payment is None or payment[1] != "payment":
        raise Refused(errors_pb2.ERROR_REASON_PAYMENT_NOT_FOUND,
                      f"no payment {request.payment_id} was applied by {rules.service}", "payment_id")
    seq, _, _, loan_id, _, result, loan_before, reversed_by, channel, currency, amount = payment
    _check_carried(refusal_of_channel, channel)
    if reversed_by is not None:
        raise Refused(errors_pb2.ERROR_REASON_ALREADY_REVERSED,
                      f"payment {request.payment_id} was already reversed by {reversed_by}", "payment_id")
    if store.has_later_live_payment(connection, loan_id, seq):
        raise Refused(errors_pb2.ERROR_REASON_REVERSAL_NOT_ALLOWED,
                      f"a later payment on loan {loan_id} depends on payment {request.payment_id}; "
                      "reverse the later payments first", "payment_id")
    found = loans.get(connection, loan_id)
    assert found is not None, "a payment's loan is never deleted"
    _, state_now = found
    restored = loans.restore(loan_id, loan_before)
    original = core_pb2.PaymentOutcome.FromString(result).applied.posting
    response = core_pb2.ReversePaymentResponse(
        reversal_id=request.reversal_id,
        payment_id=request.payment_id,
        loan_id=loan_id,
        outstanding_balance=types_pb2.Money(currency_code=currency, amount_minor=restored.outstanding_principal),
        posting=ledger.reversal_posting(request.reversal_id, request.business_date, original),
    )
    store.insert_movement(connection, request.reversal_id, "reversal", request.payment_id, loan_id,
                          request.business_date, channel, currency, amount, request_digest,
                          response.SerializeToString(), state_now)
    store.mark_reversed(connection, request.payment_id, request.reversal_id)
    loans.write_back(connection)
    return response



def _check_carried(refusal_of_channel, channel: int) -> None:
    refused = refusal_of_channel(channel)
    if refused is not None:
        raise Refused(refused.reason, refused.message, "channel")
